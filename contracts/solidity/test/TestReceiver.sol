// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {BandwidthMarket} from "../BandwidthMarket.sol";
import {MarketBase} from "../market/MarketBase.sol";

/// @notice TEST ONLY. A contract account that uses the market and, when paid, either
///         accepts, rejects the payment, or tries to re-enter the market (recording the
///         revert it got). Used to test TransferFailed and the reentrancy guard.
contract TestReceiver {
    enum Mode {
        Accept,
        Reject,
        Reenter
    }

    BandwidthMarket public immutable market;
    Mode public mode;
    bytes public lastReentryError;
    uint256 public reentryAttempts;

    constructor(BandwidthMarket market_) {
        market = market_;
    }

    function setMode(Mode m) external {
        mode = m;
    }

    function register(bytes32 wgPublicKey) external payable {
        market.register{value: msg.value}(1, 1, bytes32(0), wgPublicKey, MarketBase.QualityPromise(1, 1, 1));
    }

    function requestUnstake(uint256 amount) external {
        market.requestUnstake(amount);
    }

    function withdrawStake() external {
        market.withdrawStake();
    }

    function openOrder(address provider) external payable returns (uint256) {
        return market.openOrder{value: msg.value}(provider);
    }

    function cancelOrder(uint256 orderId) external {
        market.cancelOrder(orderId);
    }

    function withdraw() external {
        market.withdraw();
    }

    receive() external payable {
        if (mode == Mode.Reject) revert("TestReceiver: rejecting payment");
        if (mode == Mode.Reenter) {
            reentryAttempts++;
            try market.withdraw() {}
            catch (bytes memory reason) {
                lastReentryError = reason;
            }
        }
    }
}
