// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {MarketBase} from "./MarketBase.sol";

/// @title VerifierQuorum
/// @notice Permissionless, staked verifiers and quorum slashing over all of a period's
///         reports.
///
///  - Anyone becomes a verifier by staking at least `minVerifierStake`
///    (`joinVerifiers`); leaving goes through `verifierUnbondDelay`.
///  - Each report (pass or fail) locks `reportBond` of the reporter's stake. Reports for a
///    period are accepted until `challengeWindow` seconds after the period ends.
///  - After the window anyone calls `finalize(provider, period)`. The provider is slashed
///    only when failing reports come from at least `minReporters` distinct verifiers AND
///    are at least `failQuorumBps` of all reports for the period. The reports on the
///    losing side forfeit their bonds to the reports on the winning side (a lone report
///    nobody contradicted gets its bond back).
///  - Slash proceeds: `verifierShareBps` to the verifiers that were right, the rest to
///    the provider's clients weighted by their unredeemed escrow (see BandwidthMarket).
///    Everyone pulls: verifiers with `claimReport`, clients with `claimSlashShare`.
///  No loop runs over reports or orders.
abstract contract VerifierQuorum is MarketBase {
    struct Verifier {
        uint256 stake;
        uint256 unbonding;
        uint64 unlockAt;
    }

    struct Tally {
        uint32 passes;
        uint32 fails;
        bool finalized;
        bool failed;
        /// No report contradicted the losing side (nobody on the winning side).
        bool neutral;
        /// Bond each report of this tally locked (params may change later).
        uint256 bond;
        /// What each report on the winning side receives on top of its bond.
        uint256 rewardPerRight;
    }

    bytes32 public constant REPORT_TYPEHASH =
        keccak256("Report(address provider,uint64 period,bool passed,bytes32 metricsHash)");

    uint8 private constant VOTE_PASS = 1;
    uint8 private constant VOTE_FAIL = 2;
    uint8 private constant VOTE_CLAIMED = 4;

    mapping(address => Verifier) private _verifiers;
    mapping(bytes32 => uint8) private _votes; // keccak(verifier, provider, period)
    mapping(address => mapping(uint64 => Tally)) private _tallies;
    mapping(address => mapping(uint64 => bool)) public slashed;

    event VerifierStaked(address indexed verifier, uint256 amount, uint256 stake);
    event VerifierUnstakeRequested(address indexed verifier, uint256 amount, uint256 unbonding, uint64 unlockAt);
    event VerifierStakeWithdrawn(address indexed verifier, uint256 amount);
    event ReportSubmitted(
        address indexed verifier, address indexed provider, uint64 indexed period, bool passed, bytes32 metricsHash
    );
    event PeriodFinalized(
        address indexed provider,
        uint64 indexed period,
        bool failed,
        uint32 passes,
        uint32 fails,
        uint256 slashAmount,
        uint256 toClients,
        uint256 toRightVerifiers
    );
    event ProviderSlashed(
        address indexed provider, uint64 indexed period, uint256 amount, uint256 toClients, uint256 toVerifiers
    );
    event ReportClaimed(address indexed verifier, address indexed provider, uint64 indexed period, bool right, uint256 reward);

    error NotVerifier(address account);
    error PeriodOutOfRange(uint64 period, uint64 current);
    error DuplicateReport(address verifier, address provider, uint64 period);
    error BondExceedsStake(uint256 bond, uint256 stake);
    error ChallengeWindowOpen(uint64 period, uint256 closesAt);
    error AlreadyFinalized(address provider, uint64 period);
    error NotFinalized(address provider, uint64 period);
    error NoReports(address provider, uint64 period);
    error NothingToClaim(address verifier, address provider, uint64 period);

    // ----------------------------------------------------------------- staking

    /// @notice Stake msg.value as a verifier (first stake must reach minVerifierStake).
    function joinVerifiers() external payable nonReentrant whenNotPaused {
        if (msg.value == 0) revert ZeroAmount();
        Verifier storage v = _verifiers[msg.sender];
        uint256 stake = v.stake + msg.value;
        if (stake < _params.minVerifierStake) revert InsufficientStake(stake, _params.minVerifierStake);
        v.stake = stake;
        totalVerifierStake += msg.value;
        emit VerifierStaked(msg.sender, msg.value, stake);
    }

    /// @notice Start unbonding `amount`; the rest must be zero or >= minVerifierStake.
    function requestVerifierUnstake(uint256 amount) external {
        Verifier storage v = _verifiers[msg.sender];
        if (amount == 0) revert ZeroAmount();
        if (amount > v.stake) revert AmountExceedsStake(amount, v.stake);
        uint256 remaining = v.stake - amount;
        if (remaining != 0 && remaining < _params.minVerifierStake) {
            revert StakeBelowMinimum(remaining, _params.minVerifierStake);
        }
        v.stake = remaining;
        v.unbonding += amount;
        v.unlockAt = uint64(block.timestamp) + _params.verifierUnbondDelay;
        emit VerifierUnstakeRequested(msg.sender, amount, v.unbonding, v.unlockAt);
    }

    function withdrawVerifierStake() external nonReentrant {
        Verifier storage v = _verifiers[msg.sender];
        uint256 amount = v.unbonding;
        v.unbonding = 0;
        totalVerifierStake -= amount;
        emit VerifierStakeWithdrawn(msg.sender, amount);
        _releaseUnbonded(amount, v.unlockAt);
    }

    function getVerifier(address account) external view returns (Verifier memory) {
        return _verifiers[account];
    }

    /// @notice Staked at least minVerifierStake: may report.
    function isVerifier(address account) public view returns (bool) {
        return _verifiers[account].stake >= _params.minVerifierStake;
    }

    // ----------------------------------------------------------------- reports

    function currentPeriod() public view returns (uint64) {
        return uint64(block.timestamp / _params.reportPeriod);
    }

    /// @notice When reports for `period` stop being accepted and `finalize` opens.
    function challengeClosesAt(uint64 period) public view returns (uint256) {
        return (uint256(period) + 1) * _params.reportPeriod + _params.challengeWindow;
    }

    /// @notice A verifier reports on a provider for a period that is running or whose
    ///         challenge window is still open.
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

    function reportDigest(address providerAddr, uint64 period, bool passed, bytes32 metricsHash)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(REPORT_TYPEHASH, providerAddr, period, passed, metricsHash)));
    }

    function hasReported(address verifier, address providerAddr, uint64 period) external view returns (bool) {
        return _votes[_voteKey(verifier, providerAddr, period)] != 0;
    }

    function failReports(address providerAddr, uint64 period) external view returns (uint256) {
        return _tallies[providerAddr][period].fails;
    }

    function getTally(address providerAddr, uint64 period) external view returns (Tally memory) {
        return _tallies[providerAddr][period];
    }

    // ----------------------------------------------------------------- outcome

    /// @notice Anyone, once the challenge window has closed: judge the period, slash the
    ///         provider if the quorum failed it, and settle the reporters' bonds. The
    ///         caller is credited the rounding dust.
    function finalize(address providerAddr, uint64 period) external nonReentrant {
        uint256 closesAt = challengeClosesAt(period);
        if (block.timestamp < closesAt) revert ChallengeWindowOpen(period, closesAt);
        Tally storage t = _tallies[providerAddr][period];
        if (t.finalized) revert AlreadyFinalized(providerAddr, period);
        uint256 total = uint256(t.passes) + t.fails;
        if (total == 0) revert NoReports(providerAddr, period);
        t.finalized = true;
        bool failed = t.fails >= _params.minReporters && uint256(t.fails) * BPS >= total * _params.failQuorumBps;
        t.failed = failed;
        uint256 right = failed ? t.fails : t.passes;
        uint256 wrong = failed ? t.passes : t.fails;
        if (right == 0) {
            t.neutral = true; // nobody contradicted: bonds go back on claim
            emit PeriodFinalized(providerAddr, period, false, t.passes, t.fails, 0, 0, 0);
            return;
        }
        uint256 pot = wrong * t.bond;
        totalBonds -= pot;
        uint256 amount;
        uint256 toClients;
        if (failed) {
            slashed[providerAddr][period] = true;
            (amount, toClients) = _slashProvider(providerAddr);
            pot += amount - toClients;
            emit ProviderSlashed(providerAddr, period, amount, toClients, amount - toClients);
        }
        uint256 perRight = pot / right;
        t.rewardPerRight = perRight;
        totalSlashPool += perRight * right;
        emit PeriodFinalized(providerAddr, period, failed, t.passes, t.fails, amount, toClients, pot);
        _credit(msg.sender, pot - perRight * right);
    }

    /// @notice After finalize: return the reporter's bond if it was right (or nobody
    ///         contradicted it) and credit its reward. Anyone may call; money goes to
    ///         `verifier` (bond back to its stake, reward to its claimable).
    function claimReport(address verifier, address providerAddr, uint64 period) external {
        Tally storage t = _tallies[providerAddr][period];
        if (!t.finalized) revert NotFinalized(providerAddr, period);
        bytes32 key = _voteKey(verifier, providerAddr, period);
        uint8 vote = _votes[key];
        if (vote == 0 || vote & VOTE_CLAIMED != 0) revert NothingToClaim(verifier, providerAddr, period);
        _votes[key] = vote | VOTE_CLAIMED;
        bool right = t.neutral || ((vote == VOTE_FAIL) == t.failed);
        uint256 reward;
        if (right) {
            totalBonds -= t.bond;
            _verifiers[verifier].stake += t.bond;
            totalVerifierStake += t.bond;
            reward = t.rewardPerRight;
            totalSlashPool -= reward;
            _credit(verifier, reward);
        }
        emit ReportClaimed(verifier, providerAddr, period, right, reward);
    }

    // ----------------------------------------------------------------- internals

    function _voteKey(address verifier, address providerAddr, uint64 period) private pure returns (bytes32) {
        return keccak256(abi.encode(verifier, providerAddr, period));
    }

    function _report(address verifier, address providerAddr, uint64 period, bool passed, bytes32 metricsHash)
        private
    {
        Verifier storage v = _verifiers[verifier];
        if (v.stake < _params.minVerifierStake) revert NotVerifier(verifier);
        _registered(providerAddr);
        uint64 current = currentPeriod();
        if (period > current || block.timestamp >= challengeClosesAt(period)) {
            revert PeriodOutOfRange(period, current);
        }
        bytes32 key = _voteKey(verifier, providerAddr, period);
        if (_votes[key] != 0) revert DuplicateReport(verifier, providerAddr, period);
        _votes[key] = passed ? VOTE_PASS : VOTE_FAIL;
        Tally storage t = _tallies[providerAddr][period];
        if (t.passes == 0 && t.fails == 0) t.bond = _params.reportBond;
        uint256 bond = t.bond;
        if (bond > v.stake) revert BondExceedsStake(bond, v.stake);
        v.stake -= bond;
        totalVerifierStake -= bond;
        totalBonds += bond;
        if (passed) t.passes += 1;
        else t.fails += 1;
        emit ReportSubmitted(verifier, providerAddr, period, passed, metricsHash);
    }

    /// @dev Takes `slashBps` of stake + unbonding (stake first); books the clients' share
    ///      into the escrow-weighted accumulator (or returns it to the verifiers' share
    ///      when no accepted order carries escrow).
    function _slashProvider(address providerAddr) private returns (uint256 amount, uint256 toClients) {
        Provider storage p = _providers[providerAddr];
        amount = (p.stake + p.unbonding) * _params.slashBps / BPS;
        uint256 fromStake = amount <= p.stake ? amount : p.stake;
        p.stake -= fromStake;
        p.unbonding -= amount - fromStake;
        totalStake -= amount;
        toClients = amount - amount * _params.verifierShareBps / BPS;
        if (toClients == 0 || _activeWeight(providerAddr) == 0) return (amount, 0);
        _addSlashToClients(providerAddr, toClients);
    }
}
