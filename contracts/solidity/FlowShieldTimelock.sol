// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title FlowShieldTimelock
/// @notice OpenZeppelin's TimelockController, unchanged, compiled here so deployments get
///         its bytecode: the owner of BandwidthMarket. Proposals are public
///         (`CallScheduled`) and executable only after `minDelay`. Deploy with `admin` =
///         address(0) so nobody can bypass the delay by re-granting roles.
contract FlowShieldTimelock is TimelockController {
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
