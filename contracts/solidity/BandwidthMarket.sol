// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title BandwidthMarket
/// @notice FlowShield bandwidth market: staked providers, escrowed orders paid with
///         off-chain EIP-712 cumulative vouchers, and verifier-quorum slashing.
///
/// Money flow (native token only):
///  - Provider stake and unbonding stake are held until `withdrawStake` after `unstakeDelay`.
///  - Order escrow is held until vouchers are redeemed (provider) or the order ends (client refund).
///  - Every payout except `withdrawStake` is credited to `claimable` and pulled with `withdraw`
///    (pull payments: a reverting recipient can never block settlement or slashing).
///  Invariant: address(this).balance == totalStake + totalEscrow + totalClaimable.
///
/// Verifiers are admitted by the owner (governance), not by stake: a quorum is only
/// meaningful over a known set, and an open stake-based set would let a single rich
/// actor fill the quorum. When `quorum` verifiers report a provider as failing for one
/// report period, `slashBps` of its stake (stake + unbonding) is slashed once for that
/// period: `verifierShareBps` of it is split among the failing reporters and the rest
/// among the clients of the provider's accepted, unsettled orders (all to the reporters
/// if there are none).
contract BandwidthMarket is Ownable, ReentrancyGuard, EIP712 {
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
        uint256 minStake;
        uint64 unstakeDelay;
        uint64 acceptTimeout;
        uint64 closeGrace;
        uint64 reportPeriod;
        uint32 quorum;
        uint16 slashBps;
        uint16 verifierShareBps;
    }

    struct Provider {
        bool registered;
        uint64 unbondingUnlockAt;
        uint256 stake;
        uint256 unbonding;
        uint256 pricePerGiB;
        uint256 pricePerHour;
        /// keccak256 of the provider's libp2p PeerId bytes (`PeerId::to_bytes()`): binds the
        /// PeerId that gossips this provider's offers to this chain address. Fullnodes admit
        /// a heartbeat only if its PeerId hashes to this value.
        bytes32 peerIdHash;
        bytes32 wgPublicKey;
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

    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(uint256 orderId,uint256 cumulativeAmount)");
    bytes32 public constant REPORT_TYPEHASH =
        keccak256("Report(address provider,uint64 period,bool passed,bytes32 metricsHash)");
    /// @notice Cap on accepted, unsettled orders per provider; bounds the slashing loop.
    uint256 public constant MAX_ACTIVE_ORDERS = 32;
    uint256 private constant BPS = 10_000;

    // ----------------------------------------------------------------- storage

    Params private _params;
    mapping(address => Provider) private _providers;
    mapping(uint256 => Order) private _orders;
    mapping(address => uint256[]) private _activeOrders;
    mapping(uint256 => uint256) private _activeIndex; // orderId => index + 1 in _activeOrders
    mapping(address => uint256) public claimable;
    mapping(address => bool) public isVerifier;
    mapping(bytes32 => bool) private _reported; // keccak(verifier, provider, period)
    mapping(address => mapping(uint64 => address[])) private _failReporters;
    mapping(address => mapping(uint64 => bool)) public slashed;

    uint256 public nextOrderId = 1;
    uint256 public totalStake;
    uint256 public totalEscrow;
    uint256 public totalClaimable;

    // ----------------------------------------------------------------- events

    event ProviderRegistered(
        address indexed provider,
        uint256 stake,
        uint256 pricePerGiB,
        uint256 pricePerHour,
        bytes32 peerIdHash,
        bytes32 wgPublicKey
    );
    event ProviderUpdated(
        address indexed provider, uint256 pricePerGiB, uint256 pricePerHour, bytes32 peerIdHash, bytes32 wgPublicKey
    );
    event StakeAdded(address indexed provider, uint256 amount, uint256 stake);
    event UnstakeRequested(address indexed provider, uint256 amount, uint256 unbonding, uint64 unlockAt);
    event StakeWithdrawn(address indexed provider, uint256 amount);
    event OrderOpened(
        uint256 indexed orderId, address indexed client, address indexed provider, uint256 escrow, uint64 acceptDeadline
    );
    event OrderToppedUp(uint256 indexed orderId, uint256 amount, uint256 escrow);
    event OrderAccepted(uint256 indexed orderId, address indexed provider);
    event OrderRejected(uint256 indexed orderId, uint256 refund);
    event OrderCancelled(uint256 indexed orderId, address indexed by, uint256 refund);
    event VoucherRedeemed(uint256 indexed orderId, uint256 cumulativeAmount, uint256 paid);
    event OrderCloseRequested(uint256 indexed orderId, uint64 closableAt);
    event OrderSettled(uint256 indexed orderId, uint256 paidToProvider, uint256 refundToClient);
    event Credited(address indexed account, uint256 amount, uint256 claimable);
    event Withdrawn(address indexed account, uint256 amount);
    event VerifierRegistered(address indexed verifier);
    event VerifierRemoved(address indexed verifier);
    event ReportSubmitted(
        address indexed verifier, address indexed provider, uint64 indexed period, bool passed, bytes32 metricsHash
    );
    event ProviderSlashed(
        address indexed provider, uint64 indexed period, uint256 amount, uint256 toClients, uint256 toVerifiers
    );

    // ----------------------------------------------------------------- errors

    error InvalidParams();
    error ZeroAddress();
    error ZeroAmount();
    error InvalidWgKey();
    error AlreadyRegistered(address provider);
    error NotRegistered(address provider);
    error InsufficientStake(uint256 given, uint256 minimum);
    error AmountExceedsStake(uint256 requested, uint256 stake);
    error StakeBelowMinimum(uint256 remaining, uint256 minimum);
    error NothingToWithdraw();
    error UnbondingLocked(uint64 unlockAt);
    error TransferFailed();
    error ProviderNotActive(address provider);
    error UnknownOrder(uint256 orderId);
    error Unauthorized(address caller);
    error InvalidOrderStatus(uint256 orderId, OrderStatus status);
    error AcceptDeadlinePassed(uint256 orderId, uint64 deadline);
    error AcceptWindowOpen(uint256 orderId, uint64 deadline);
    error TooManyActiveOrders(address provider);
    error VoucherNotIncreasing(uint256 cumulativeAmount, uint256 redeemed);
    error VoucherExceedsEscrow(uint256 cumulativeAmount, uint256 escrow);
    error InvalidSignature();
    error InvalidSigner(address recovered, address expected);
    error CloseGraceActive(uint256 orderId, uint64 closableAt);
    error AlreadyVerifier(address verifier);
    error NotVerifier(address account);
    error PeriodOutOfRange(uint64 period, uint64 current);
    error DuplicateReport(address verifier, address provider, uint64 period);

    // ----------------------------------------------------------------- setup

    constructor(Params memory p) Ownable(msg.sender) EIP712("FlowShield", "1") {
        if (
            p.minStake == 0 || p.reportPeriod == 0 || p.quorum == 0 || p.slashBps > BPS || p.verifierShareBps > BPS
                || p.acceptTimeout == 0
        ) revert InvalidParams();
        _params = p;
    }

    function getParams() external view returns (Params memory) {
        return _params;
    }

    // ----------------------------------------------------------------- providers

    /// @notice Register the caller as a provider; msg.value is the initial stake. `peerIdHash`
    ///         is keccak256 of the libp2p PeerId bytes that will gossip this provider's offers.
    function register(uint256 pricePerGiB, uint256 pricePerHour, bytes32 peerIdHash, bytes32 wgPublicKey)
        external
        payable
        nonReentrant
    {
        Provider storage p = _providers[msg.sender];
        if (p.registered) revert AlreadyRegistered(msg.sender);
        if (msg.value < _params.minStake) revert InsufficientStake(msg.value, _params.minStake);
        if (wgPublicKey == bytes32(0)) revert InvalidWgKey();
        p.registered = true;
        p.stake = msg.value;
        p.pricePerGiB = pricePerGiB;
        p.pricePerHour = pricePerHour;
        p.peerIdHash = peerIdHash;
        p.wgPublicKey = wgPublicKey;
        totalStake += msg.value;
        emit ProviderRegistered(msg.sender, msg.value, pricePerGiB, pricePerHour, peerIdHash, wgPublicKey);
    }

    /// @notice Change prices, PeerId hash or WireGuard key. Existing orders are unaffected
    ///         (their price is whatever the client's vouchers say).
    function updateProvider(uint256 pricePerGiB, uint256 pricePerHour, bytes32 peerIdHash, bytes32 wgPublicKey)
        external
    {
        Provider storage p = _registered(msg.sender);
        if (wgPublicKey == bytes32(0)) revert InvalidWgKey();
        p.pricePerGiB = pricePerGiB;
        p.pricePerHour = pricePerHour;
        p.peerIdHash = peerIdHash;
        p.wgPublicKey = wgPublicKey;
        emit ProviderUpdated(msg.sender, pricePerGiB, pricePerHour, peerIdHash, wgPublicKey);
    }

    function addStake() external payable nonReentrant {
        Provider storage p = _registered(msg.sender);
        if (msg.value == 0) revert ZeroAmount();
        p.stake += msg.value;
        totalStake += msg.value;
        emit StakeAdded(msg.sender, msg.value, p.stake);
    }

    /// @notice Move `amount` of stake to unbonding. The remaining stake must be zero (exit)
    ///         or at least minStake. Each request restarts the unbonding timer.
    ///         Unbonding stake stays slashable until withdrawn.
    function requestUnstake(uint256 amount) external {
        Provider storage p = _registered(msg.sender);
        if (amount == 0) revert ZeroAmount();
        if (amount > p.stake) revert AmountExceedsStake(amount, p.stake);
        uint256 remaining = p.stake - amount;
        if (remaining != 0 && remaining < _params.minStake) revert StakeBelowMinimum(remaining, _params.minStake);
        p.stake = remaining;
        p.unbonding += amount;
        uint64 unlockAt = uint64(block.timestamp) + _params.unstakeDelay;
        p.unbondingUnlockAt = unlockAt;
        emit UnstakeRequested(msg.sender, amount, p.unbonding, unlockAt);
    }

    /// @notice Send all unbonded stake to the caller once the delay has passed.
    function withdrawStake() external nonReentrant {
        Provider storage p = _registered(msg.sender);
        uint256 amount = p.unbonding;
        if (amount == 0) revert NothingToWithdraw();
        if (block.timestamp < p.unbondingUnlockAt) revert UnbondingLocked(p.unbondingUnlockAt);
        p.unbonding = 0;
        totalStake -= amount;
        emit StakeWithdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    function getProvider(address account) external view returns (Provider memory) {
        return _providers[account];
    }

    /// @notice Registered with at least minStake at stake: can receive and accept orders.
    function isActiveProvider(address account) public view returns (bool) {
        Provider storage p = _providers[account];
        return p.registered && p.stake >= _params.minStake;
    }

    function activeOrders(address providerAddr) external view returns (uint256[] memory) {
        return _activeOrders[providerAddr];
    }

    // ----------------------------------------------------------------- orders

    /// @notice Open an order with `provider`, escrowing msg.value as the maximum spend.
    ///         The provider has `acceptTimeout` seconds to accept.
    function openOrder(address providerAddr) external payable nonReentrant returns (uint256 orderId) {
        if (msg.value == 0) revert ZeroAmount();
        if (!isActiveProvider(providerAddr)) revert ProviderNotActive(providerAddr);
        orderId = nextOrderId++;
        uint64 deadline = uint64(block.timestamp) + _params.acceptTimeout;
        _orders[orderId] = Order({
            client: msg.sender,
            provider: providerAddr,
            status: OrderStatus.Pending,
            openedAt: uint64(block.timestamp),
            acceptDeadline: deadline,
            closableAt: 0,
            escrow: msg.value,
            redeemed: 0
        });
        totalEscrow += msg.value;
        emit OrderOpened(orderId, msg.sender, providerAddr, msg.value, deadline);
    }

    /// @notice Client adds escrow to a pending or active order.
    function topUp(uint256 orderId) external payable nonReentrant {
        Order storage o = _order(orderId);
        if (msg.sender != o.client) revert Unauthorized(msg.sender);
        if (o.status != OrderStatus.Pending && o.status != OrderStatus.Active) {
            revert InvalidOrderStatus(orderId, o.status);
        }
        if (msg.value == 0) revert ZeroAmount();
        o.escrow += msg.value;
        totalEscrow += msg.value;
        emit OrderToppedUp(orderId, msg.value, o.escrow);
    }

    function acceptOrder(uint256 orderId) external {
        Order storage o = _order(orderId);
        if (msg.sender != o.provider) revert Unauthorized(msg.sender);
        if (o.status != OrderStatus.Pending) revert InvalidOrderStatus(orderId, o.status);
        if (block.timestamp > o.acceptDeadline) revert AcceptDeadlinePassed(orderId, o.acceptDeadline);
        if (!isActiveProvider(msg.sender)) revert ProviderNotActive(msg.sender);
        uint256[] storage active = _activeOrders[msg.sender];
        if (active.length >= MAX_ACTIVE_ORDERS) revert TooManyActiveOrders(msg.sender);
        o.status = OrderStatus.Active;
        active.push(orderId);
        _activeIndex[orderId] = active.length;
        emit OrderAccepted(orderId, msg.sender);
    }

    /// @notice Provider declines a pending order; the client is refunded in full.
    function rejectOrder(uint256 orderId) external {
        Order storage o = _order(orderId);
        if (msg.sender != o.provider) revert Unauthorized(msg.sender);
        if (o.status != OrderStatus.Pending) revert InvalidOrderStatus(orderId, o.status);
        uint256 refund = _closeEscrow(o, OrderStatus.Cancelled);
        emit OrderRejected(orderId, refund);
        _credit(o.client, refund);
    }

    /// @notice Cancel a pending order: the client at any time, anyone once the accept
    ///         deadline has passed (timeout). The client is refunded in full.
    function cancelOrder(uint256 orderId) external {
        Order storage o = _order(orderId);
        if (o.status != OrderStatus.Pending) revert InvalidOrderStatus(orderId, o.status);
        if (msg.sender != o.client && block.timestamp <= o.acceptDeadline) {
            revert AcceptWindowOpen(orderId, o.acceptDeadline);
        }
        uint256 refund = _closeEscrow(o, OrderStatus.Cancelled);
        emit OrderCancelled(orderId, msg.sender, refund);
        _credit(o.client, refund);
    }

    /// @notice Provider redeems the client's latest cumulative voucher; pays the
    ///         difference to what was already redeemed. May be called repeatedly.
    function redeemVoucher(uint256 orderId, uint256 cumulativeAmount, bytes calldata signature) external {
        _redeem(orderId, cumulativeAmount, signature);
    }

    /// @notice Client asks to end an active order. The provider keeps `closeGrace`
    ///         seconds to redeem its latest voucher; then the client may settle.
    function requestClose(uint256 orderId) external {
        Order storage o = _order(orderId);
        if (msg.sender != o.client) revert Unauthorized(msg.sender);
        if (o.status != OrderStatus.Active) revert InvalidOrderStatus(orderId, o.status);
        uint64 closableAt = uint64(block.timestamp) + _params.closeGrace;
        o.status = OrderStatus.Closing;
        o.closableAt = closableAt;
        emit OrderCloseRequested(orderId, closableAt);
    }

    /// @notice End an accepted order: the provider keeps what it redeemed, the client is
    ///         refunded the rest. The provider may settle at any time; the client only
    ///         after requestClose and the grace period.
    function settle(uint256 orderId) external {
        _settle(orderId);
    }

    /// @notice Provider redeems a final voucher and settles in one transaction.
    function redeemAndSettle(uint256 orderId, uint256 cumulativeAmount, bytes calldata signature) external {
        _redeem(orderId, cumulativeAmount, signature);
        _settle(orderId);
    }

    function getOrder(uint256 orderId) external view returns (Order memory) {
        return _orders[orderId];
    }

    // ----------------------------------------------------------------- payouts

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
        return totalStake + totalEscrow + totalClaimable;
    }

    // ----------------------------------------------------------------- verifiers

    function registerVerifier(address verifier) external onlyOwner {
        if (verifier == address(0)) revert ZeroAddress();
        if (isVerifier[verifier]) revert AlreadyVerifier(verifier);
        isVerifier[verifier] = true;
        emit VerifierRegistered(verifier);
    }

    function removeVerifier(address verifier) external onlyOwner {
        if (!isVerifier[verifier]) revert NotVerifier(verifier);
        isVerifier[verifier] = false;
        emit VerifierRemoved(verifier);
    }

    function currentPeriod() public view returns (uint64) {
        return uint64(block.timestamp / _params.reportPeriod);
    }

    /// @notice A verifier reports on a provider for the current or previous period.
    function submitReport(address providerAddr, uint64 period, bool passed, bytes32 metricsHash) external {
        _report(msg.sender, providerAddr, period, passed, metricsHash);
    }

    /// @notice Relay a report signed off chain (EIP-712 `Report`) by a verifier.
    function submitSignedReport(
        address providerAddr,
        uint64 period,
        bool passed,
        bytes32 metricsHash,
        bytes calldata signature
    ) external {
        address verifier = _recover(reportDigest(providerAddr, period, passed, metricsHash), signature);
        _report(verifier, providerAddr, period, passed, metricsHash);
    }

    function hasReported(address verifier, address providerAddr, uint64 period) external view returns (bool) {
        return _reported[_reportKey(verifier, providerAddr, period)];
    }

    function failReports(address providerAddr, uint64 period) external view returns (uint256) {
        return _failReporters[providerAddr][period].length;
    }

    // ----------------------------------------------------------------- EIP-712

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function voucherDigest(uint256 orderId, uint256 cumulativeAmount) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(VOUCHER_TYPEHASH, orderId, cumulativeAmount)));
    }

    function reportDigest(address providerAddr, uint64 period, bool passed, bytes32 metricsHash)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(REPORT_TYPEHASH, providerAddr, period, passed, metricsHash)));
    }

    // ----------------------------------------------------------------- internals

    function _registered(address account) private view returns (Provider storage p) {
        p = _providers[account];
        if (!p.registered) revert NotRegistered(account);
    }

    function _order(uint256 orderId) private view returns (Order storage o) {
        o = _orders[orderId];
        if (o.status == OrderStatus.None) revert UnknownOrder(orderId);
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        // OZ ECDSA rejects malleable (high-s) signatures, bad lengths and v outside {27, 28}.
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        if (err != ECDSA.RecoverError.NoError || signer == address(0)) revert InvalidSignature();
        return signer;
    }

    function _redeem(uint256 orderId, uint256 cumulativeAmount, bytes calldata signature) private {
        Order storage o = _order(orderId);
        if (msg.sender != o.provider) revert Unauthorized(msg.sender);
        if (o.status != OrderStatus.Active && o.status != OrderStatus.Closing) {
            revert InvalidOrderStatus(orderId, o.status);
        }
        if (cumulativeAmount <= o.redeemed) revert VoucherNotIncreasing(cumulativeAmount, o.redeemed);
        if (cumulativeAmount > o.escrow) revert VoucherExceedsEscrow(cumulativeAmount, o.escrow);
        address signer = _recover(voucherDigest(orderId, cumulativeAmount), signature);
        if (signer != o.client) revert InvalidSigner(signer, o.client);
        uint256 paid = cumulativeAmount - o.redeemed;
        o.redeemed = cumulativeAmount;
        totalEscrow -= paid;
        emit VoucherRedeemed(orderId, cumulativeAmount, paid);
        _credit(o.provider, paid);
    }

    function _settle(uint256 orderId) private {
        Order storage o = _order(orderId);
        if (msg.sender == o.provider) {
            if (o.status != OrderStatus.Active && o.status != OrderStatus.Closing) {
                revert InvalidOrderStatus(orderId, o.status);
            }
        } else if (msg.sender == o.client) {
            if (o.status != OrderStatus.Closing) revert InvalidOrderStatus(orderId, o.status);
            if (block.timestamp < o.closableAt) revert CloseGraceActive(orderId, o.closableAt);
        } else {
            revert Unauthorized(msg.sender);
        }
        _removeActive(o.provider, orderId);
        uint256 refund = _closeEscrow(o, OrderStatus.Settled);
        emit OrderSettled(orderId, o.redeemed, refund);
        _credit(o.client, refund);
    }

    /// @dev Marks the order finished and releases its unredeemed escrow; returns the refund.
    function _closeEscrow(Order storage o, OrderStatus finalStatus) private returns (uint256 refund) {
        refund = o.escrow - o.redeemed;
        o.status = finalStatus;
        totalEscrow -= refund;
    }

    function _removeActive(address providerAddr, uint256 orderId) private {
        uint256 idx = _activeIndex[orderId];
        if (idx == 0) return;
        uint256[] storage active = _activeOrders[providerAddr];
        uint256 last = active[active.length - 1];
        active[idx - 1] = last;
        _activeIndex[last] = idx;
        active.pop();
        delete _activeIndex[orderId];
    }

    /// @dev Credits are internal bookkeeping only (no external call); amount 0 is a no-op.
    function _credit(address account, uint256 amount) private {
        if (amount == 0) return;
        claimable[account] += amount;
        totalClaimable += amount;
        emit Credited(account, amount, claimable[account]);
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = payable(to).call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    function _reportKey(address verifier, address providerAddr, uint64 period) private pure returns (bytes32) {
        return keccak256(abi.encode(verifier, providerAddr, period));
    }

    function _report(address verifier, address providerAddr, uint64 period, bool passed, bytes32 metricsHash)
        private
    {
        if (!isVerifier[verifier]) revert NotVerifier(verifier);
        _registered(providerAddr);
        uint64 current = currentPeriod();
        if (period > current || period + 1 < current) revert PeriodOutOfRange(period, current);
        bytes32 key = _reportKey(verifier, providerAddr, period);
        if (_reported[key]) revert DuplicateReport(verifier, providerAddr, period);
        _reported[key] = true;
        emit ReportSubmitted(verifier, providerAddr, period, passed, metricsHash);
        if (passed) return;
        address[] storage reporters = _failReporters[providerAddr][period];
        reporters.push(verifier);
        if (reporters.length == _params.quorum && !slashed[providerAddr][period]) {
            _slash(providerAddr, period, reporters);
        }
    }

    function _slash(address providerAddr, uint64 period, address[] storage reporters) private {
        slashed[providerAddr][period] = true;
        Provider storage p = _providers[providerAddr];
        uint256 amount = (p.stake + p.unbonding) * _params.slashBps / BPS;
        // Take from active stake first, then from unbonding stake.
        uint256 fromStake = amount <= p.stake ? amount : p.stake;
        p.stake -= fromStake;
        p.unbonding -= amount - fromStake;
        totalStake -= amount;

        uint256 toVerifiers = amount * _params.verifierShareBps / BPS;
        uint256 toClients = amount - toVerifiers;
        uint256[] storage active = _activeOrders[providerAddr];
        uint256 n = active.length;
        if (n == 0) {
            toVerifiers += toClients;
            toClients = 0;
        } else {
            uint256 share = toClients / n;
            toVerifiers += toClients - share * n; // rounding dust
            toClients = share * n;
            for (uint256 i = 0; i < n; i++) {
                _credit(_orders[active[i]].client, share);
            }
        }
        emit ProviderSlashed(providerAddr, period, amount, toClients, toVerifiers);
        uint256 m = reporters.length;
        uint256 vshare = toVerifiers / m;
        for (uint256 i = 0; i < m; i++) {
            _credit(reporters[i], vshare);
        }
        _credit(reporters[0], toVerifiers - vshare * m);
    }
}
