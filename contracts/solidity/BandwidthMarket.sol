// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {MarketBase} from "./market/MarketBase.sol";
import {VerifierQuorum} from "./market/VerifierQuorum.sol";

/// @title BandwidthMarket
/// @notice FlowShield bandwidth market: staked providers that quality a quality, escrowed
///         orders paid with off-chain EIP-712 cumulative vouchers, and slashing by a
///         quorum of staked verifiers (VerifierQuorum.sol) under timelocked governance
///         (MarketBase.sol).
///
/// Money flow (native token only):
///  - Provider and verifier stake (and unbonding stake) are held until withdrawn after
///    their unbonding delays; report bonds until the period is finalized and claimed.
///  - Order escrow is held until vouchers are redeemed (provider) or the order ends (client refund).
///  - Every payout except stake withdrawals is credited to `claimable` and pulled with
///    `withdraw` (a reverting recipient can never block settlement or slashing).
///  Invariant: balance == totalStake + totalEscrow + totalClaimable + totalVerifierStake
///             + totalBonds + totalSlashPool.
///
/// Clients' share of a slash is weighted by escrow without a loop over orders: each
/// accepted order carries a weight (its unredeemed escrow), the provider keeps the running
/// sum, and a slash adds share/sum to the provider's accumulator. An order's share is
/// credited to its client whenever its weight changes (top-up, redemption, settlement) or
/// when anyone calls `claimSlashShare`.
contract BandwidthMarket is VerifierQuorum {
    // ----------------------------------------------------------------- constants

    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(uint256 orderId,uint256 cumulativeAmount)");
    /// @notice Cap on accepted, unsettled orders per provider (capacity, not slashing:
    ///         slashing no longer loops over orders).
    uint256 public constant MAX_ACTIVE_ORDERS = 32;

    // ----------------------------------------------------------------- storage

    mapping(address => uint256[]) private _activeOrders;
    mapping(uint256 => uint256) private _activeIndex; // orderId => index + 1 in _activeOrders
    /// provider => slash proceeds per unit of escrow weight (scaled by ACC_SCALE)
    mapping(address => uint256) private _accPerWeight;
    /// provider => sum of the weights of its accepted orders
    mapping(address => uint256) private _totalWeight;
    mapping(uint256 => uint256) private _weight;
    mapping(uint256 => uint256) private _accPaid;

    uint256 public nextOrderId = 1;

    // ----------------------------------------------------------------- events

    event ProviderRegistered(
        address indexed provider,
        uint256 stake,
        uint256 pricePerGiB,
        uint256 pricePerHour,
        bytes32 peerIdHash,
        bytes32 wgPublicKey,
        QualityPromise quality
    );
    event ProviderUpdated(
        address indexed provider,
        uint256 pricePerGiB,
        uint256 pricePerHour,
        bytes32 peerIdHash,
        bytes32 wgPublicKey,
        QualityPromise quality
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
    event SlashShareCredited(uint256 indexed orderId, address indexed client, uint256 amount);

    // ----------------------------------------------------------------- errors

    error InvalidWgKey();
    error InvalidPromise(string field);
    error AlreadyRegistered(address provider);
    error ProviderNotActive(address provider);
    error UnknownOrder(uint256 orderId);
    error Unauthorized(address caller);
    error InvalidOrderStatus(uint256 orderId, OrderStatus status);
    error AcceptDeadlinePassed(uint256 orderId, uint64 deadline);
    error AcceptWindowOpen(uint256 orderId, uint64 deadline);
    error TooManyActiveOrders(address provider);
    error VoucherNotIncreasing(uint256 cumulativeAmount, uint256 redeemed);
    error VoucherExceedsEscrow(uint256 cumulativeAmount, uint256 escrow);
    error InvalidSigner(address recovered, address expected);
    error CloseGraceActive(uint256 orderId, uint64 closableAt);

    // ----------------------------------------------------------------- setup

    /// @param governance owner: a TimelockController (see FlowShieldTimelock.sol).
    constructor(Params memory p, address governance) MarketBase(p, governance) {}

    // ----------------------------------------------------------------- providers

    /// @notice Register the caller as a provider; msg.value is the initial stake. `peerIdHash`
    ///         is keccak256 of the libp2p PeerId bytes that will gossip this provider's offers.
    function register(
        uint256 pricePerGiB,
        uint256 pricePerHour,
        bytes32 peerIdHash,
        bytes32 wgPublicKey,
        QualityPromise calldata quality
    ) external payable nonReentrant whenNotPaused {
        Provider storage p = _providers[msg.sender];
        if (p.registered) revert AlreadyRegistered(msg.sender);
        if (msg.value < _params.minStake) revert InsufficientStake(msg.value, _params.minStake);
        if (wgPublicKey == bytes32(0)) revert InvalidWgKey();
        _checkPromise(quality);
        p.registered = true;
        p.quality = quality;
        p.stake = msg.value;
        p.pricePerGiB = pricePerGiB;
        p.pricePerHour = pricePerHour;
        p.peerIdHash = peerIdHash;
        p.wgPublicKey = wgPublicKey;
        totalStake += msg.value;
        emit ProviderRegistered(msg.sender, msg.value, pricePerGiB, pricePerHour, peerIdHash, wgPublicKey, quality);
    }

    /// @notice Change prices, PeerId hash, WireGuard key or quality quality. Existing orders
    ///         are unaffected (their price is whatever the client's vouchers say); the new
    ///         quality is what verifiers judge from now on.
    function updateProvider(
        uint256 pricePerGiB,
        uint256 pricePerHour,
        bytes32 peerIdHash,
        bytes32 wgPublicKey,
        QualityPromise calldata quality
    ) external {
        Provider storage p = _registered(msg.sender);
        if (wgPublicKey == bytes32(0)) revert InvalidWgKey();
        _checkPromise(quality);
        p.quality = quality;
        p.pricePerGiB = pricePerGiB;
        p.pricePerHour = pricePerHour;
        p.peerIdHash = peerIdHash;
        p.wgPublicKey = wgPublicKey;
        emit ProviderUpdated(msg.sender, pricePerGiB, pricePerHour, peerIdHash, wgPublicKey, quality);
    }

    function addStake() external payable nonReentrant whenNotPaused {
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
        p.unbonding = 0;
        totalStake -= amount;
        emit StakeWithdrawn(msg.sender, amount);
        _releaseUnbonded(amount, p.unbondingUnlockAt);
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
    function openOrder(address providerAddr) external payable nonReentrant whenNotPaused returns (uint256 orderId) {
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
    function topUp(uint256 orderId) external payable nonReentrant whenNotPaused {
        Order storage o = _order(orderId);
        if (msg.sender != o.client) revert Unauthorized(msg.sender);
        if (o.status != OrderStatus.Pending && o.status != OrderStatus.Active) {
            revert InvalidOrderStatus(orderId, o.status);
        }
        if (msg.value == 0) revert ZeroAmount();
        o.escrow += msg.value;
        totalEscrow += msg.value;
        if (o.status == OrderStatus.Active) _setWeight(orderId, o, o.escrow - o.redeemed);
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
        _setWeight(orderId, o, o.escrow - o.redeemed);
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

    function voucherDigest(uint256 orderId, uint256 cumulativeAmount) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(VOUCHER_TYPEHASH, orderId, cumulativeAmount)));
    }

    // ----------------------------------------------------------------- slash shares

    /// @notice Credit the order's client with its escrow-weighted share of the provider's
    ///         slashes so far. Anyone may call; the money goes to the client.
    function claimSlashShare(uint256 orderId) external {
        _setWeight(orderId, _order(orderId), _weight[orderId]);
    }

    /// @notice Slash proceeds owed to the order's client and not yet credited.
    function pendingSlashShare(uint256 orderId) public view returns (uint256) {
        return _weight[orderId] * (_accPerWeight[_orders[orderId].provider] - _accPaid[orderId]) / ACC_SCALE;
    }

    /// @notice The escrow weight of the provider's accepted orders (sum of unredeemed escrow).
    function providerEscrowWeight(address providerAddr) external view returns (uint256) {
        return _totalWeight[providerAddr];
    }

    // ----------------------------------------------------------------- internals

    function _order(uint256 orderId) private view returns (Order storage o) {
        o = _orders[orderId];
        if (o.status == OrderStatus.None) revert UnknownOrder(orderId);
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
        _setWeight(orderId, o, o.escrow - cumulativeAmount);
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
        _setWeight(orderId, o, 0);
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


    function _checkPromise(QualityPromise calldata q) private pure {
        if (q.maxLossBps > BPS) revert InvalidPromise("maxLossBps");
        if (q.maxRttMs == 0) revert InvalidPromise("maxRttMs");
    }

    /// @dev Credits the order's pending slash share, then sets its weight.
    function _setWeight(uint256 orderId, Order storage o, uint256 weight) private {
        uint256 acc = _accPerWeight[o.provider];
        uint256 old = _weight[orderId];
        uint256 owed = old * (acc - _accPaid[orderId]) / ACC_SCALE;
        _accPaid[orderId] = acc;
        if (owed != 0) {
            totalSlashPool -= owed;
            emit SlashShareCredited(orderId, o.client, owed);
            _credit(o.client, owed);
        }
        if (weight != old) {
            _weight[orderId] = weight;
            _totalWeight[o.provider] = _totalWeight[o.provider] - old + weight;
        }
    }

    function _activeWeight(address providerAddr) internal view override returns (uint256) {
        return _totalWeight[providerAddr];
    }

    function _addSlashToClients(address providerAddr, uint256 amount) internal override {
        _accPerWeight[providerAddr] += amount * ACC_SCALE / _totalWeight[providerAddr];
        totalSlashPool += amount;
    }
}
