// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title MarketBase
/// @notice Types, storage, events, errors, governance and money bookkeeping shared by the
///         parts of `BandwidthMarket` (providers and orders in BandwidthMarket.sol,
///         verifier staking and slashing in VerifierQuorum.sol).
///
/// Governance: the owner is meant to be an OpenZeppelin `TimelockController`
/// (FlowShieldTimelock.sol), so every parameter change and pause is proposed in public
/// (`CallScheduled`) and takes effect only after the timelock's minimum delay. The owner
/// can change parameters and pause new deposits; it can never move anyone's funds.
abstract contract MarketBase is Ownable, Pausable, ReentrancyGuard, EIP712 {
    // ----------------------------------------------------------------- types

    enum OrderStatus {
        None,
        Pending,
        Active,
        Closing,
        Settled,
        Cancelled
    }

    struct Params {
        /// Provider stake needed to register and to stay active.
        uint256 minStake;
        /// Verifier stake needed to report.
        uint256 minVerifierStake;
        /// Locked out of a verifier's stake by each report; forfeited to the verifiers that
        /// were right when the period's outcome contradicts the report.
        uint256 reportBond;
        uint64 unstakeDelay;
        uint64 verifierUnbondDelay;
        uint64 acceptTimeout;
        uint64 closeGrace;
        /// Fixed at deployment (periods are numbered by it).
        uint64 reportPeriod;
        /// Seconds after a period ends during which reports for it are still accepted;
        /// `finalize` is possible only afterwards.
        uint64 challengeWindow;
        /// Distinct failing reporters needed for a slash (>= 3: no two colluders).
        uint32 minReporters;
        /// Share of all of a period's reports that must fail for a slash (> 50 %).
        uint16 failQuorumBps;
        uint16 slashBps;
        uint16 verifierShareBps;
        /// Consecutive failing probes a verifier needs in a period before reporting failure.
        uint16 failStreak;
    }

    /// @notice The quality a provider promises; verifiers judge it against this.
    struct QualityPromise {
        uint32 minThroughputKbps;
        uint32 maxRttMs;
        uint16 maxLossBps;
    }

    struct Provider {
        bool registered;
        uint64 unbondingUnlockAt;
        uint256 stake;
        uint256 unbonding;
        uint256 pricePerGiB;
        uint256 pricePerHour;
        /// keccak256 of the provider's libp2p PeerId bytes (`PeerId::to_bytes()`).
        bytes32 peerIdHash;
        bytes32 wgPublicKey;
        QualityPromise quality;
    }

    struct Order {
        address client;
        address provider;
        OrderStatus status;
        uint64 openedAt;
        uint64 acceptDeadline;
        uint64 closableAt;
        uint256 escrow;
        uint256 redeemed;
    }

    // ----------------------------------------------------------------- constants

    uint256 internal constant BPS = 10_000;
    /// Fixed-point scale of the per-provider slash accumulator (wei per wei of escrow).
    uint256 internal constant ACC_SCALE = 1e36;

    // ----------------------------------------------------------------- storage

    Params internal _params;
    mapping(address => Provider) internal _providers;
    mapping(uint256 => Order) internal _orders;
    mapping(address => uint256) public claimable;

    uint256 public totalStake;
    uint256 public totalEscrow;
    uint256 public totalClaimable;
    /// Verifier stake + unbonding (bonds locked by open reports are in totalBonds).
    uint256 public totalVerifierStake;
    uint256 public totalBonds;
    /// Slash proceeds finalized but not yet credited (clients' and right verifiers' shares).
    uint256 public totalSlashPool;

    // ----------------------------------------------------------------- events

    event ParamsChanged(Params params);
    event Credited(address indexed account, uint256 amount, uint256 claimable);
    event Withdrawn(address indexed account, uint256 amount);

    // ----------------------------------------------------------------- errors

    error InvalidParams(string field);
    error ZeroAmount();
    error NotRegistered(address provider);
    error InsufficientStake(uint256 given, uint256 minimum);
    error AmountExceedsStake(uint256 requested, uint256 stake);
    error StakeBelowMinimum(uint256 remaining, uint256 minimum);
    error NothingToWithdraw();
    error UnbondingLocked(uint64 unlockAt);
    error TransferFailed();
    error InvalidSignature();

    // ----------------------------------------------------------------- setup

    constructor(Params memory p, address governance) Ownable(governance) EIP712("FlowShield", "1") {
        _checkParams(p);
        _params = p;
        emit ParamsChanged(p);
    }

    function getParams() external view returns (Params memory) {
        return _params;
    }

    /// @notice Governance (the timelock) changes parameters; the report period is fixed.
    function setParams(Params calldata p) external onlyOwner {
        _checkParams(p);
        if (p.reportPeriod != _params.reportPeriod) revert InvalidParams("reportPeriod");
        _params = p;
        emit ParamsChanged(p);
    }

    /// @notice Governance stops new deposits (registration, stake, orders, verifiers).
    ///         Exits, redemptions, reports, slashing and withdrawals keep working.
    function pause() external onlyOwner {
        _pause();
    }

    function unpause() external onlyOwner {
        _unpause();
    }

    /// @notice Pull everything credited to the caller (payments, refunds, slash shares).
    function withdraw() external nonReentrant {
        uint256 amount = claimable[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        claimable[msg.sender] = 0;
        totalClaimable -= amount;
        emit Withdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    /// @notice Sum of everything the contract owes; equals its balance.
    function totalObligations() external view returns (uint256) {
        return totalStake + totalEscrow + totalClaimable + totalVerifierStake + totalBonds + totalSlashPool;
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ----------------------------------------------------------------- internals

    function _checkParams(Params memory p) private pure {
        if (p.minStake == 0) revert InvalidParams("minStake");
        if (p.minVerifierStake == 0) revert InvalidParams("minVerifierStake");
        if (p.reportBond == 0 || p.reportBond > p.minVerifierStake) revert InvalidParams("reportBond");
        if (p.reportPeriod == 0) revert InvalidParams("reportPeriod");
        if (p.acceptTimeout == 0) revert InvalidParams("acceptTimeout");
        if (p.minReporters < 3) revert InvalidParams("minReporters");
        if (p.failQuorumBps <= BPS / 2 || p.failQuorumBps > BPS) revert InvalidParams("failQuorumBps");
        if (p.slashBps > BPS) revert InvalidParams("slashBps");
        if (p.verifierShareBps > BPS) revert InvalidParams("verifierShareBps");
        if (p.failStreak == 0) revert InvalidParams("failStreak");
    }

    function _registered(address account) internal view returns (Provider storage p) {
        p = _providers[account];
        if (!p.registered) revert NotRegistered(account);
    }

    function _recover(bytes32 digest, bytes calldata signature) internal pure returns (address) {
        // OZ ECDSA rejects malleable (high-s) signatures, bad lengths and v outside {27, 28}.
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        if (err != ECDSA.RecoverError.NoError || signer == address(0)) revert InvalidSignature();
        return signer;
    }

    /// @dev Credits are internal bookkeeping only (no external call); amount 0 is a no-op.
    function _credit(address account, uint256 amount) internal {
        if (amount == 0) return;
        claimable[account] += amount;
        totalClaimable += amount;
        emit Credited(account, amount, claimable[account]);
    }

    /// @dev The end of both unbondings (a provider's stake, a verifier's): `amount` leaves
    ///      for the caller only once `unlockAt` has passed. The caller has already zeroed
    ///      its unbonding and taken it off its total (a revert here undoes both).
    function _releaseUnbonded(uint256 amount, uint64 unlockAt) internal {
        if (amount == 0) revert NothingToWithdraw();
        if (block.timestamp < unlockAt) revert UnbondingLocked(unlockAt);
        _send(msg.sender, amount);
    }

    function _send(address to, uint256 amount) internal {
        (bool ok,) = payable(to).call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// @dev Hooks implemented by the order book: escrow-weighted slash shares.
    function _activeWeight(address providerAddr) internal view virtual returns (uint256);
    function _addSlashToClients(address providerAddr, uint256 amount) internal virtual;
}
