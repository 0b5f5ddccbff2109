// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title DecaRegistry
/// @notice On-chain anchor for the FlowShield decentralized CA (DeCA).
///         CA operators are admitted and removed by the owner (governance).
///         Each operator anchors the roots of its append-only Merkle certificate
///         log (tree size strictly increasing) and records certificate revocations.
/// @dev    Log state and revocations are keyed by operator address and survive
///         removal: a removed and re-admitted operator must keep growing its tree.
contract DecaRegistry is Ownable {
    struct Operator {
        bool active;
        bytes32 caCertHash;
        string url;
    }

    struct Anchor {
        uint64 treeSize;
        bytes32 root;
        uint64 timestamp;
    }

    event OperatorRegistered(address indexed operator, bytes32 caCertHash, string url);
    event OperatorRemoved(address indexed operator);
    event RootAnchored(address indexed operator, uint64 treeSize, bytes32 root, uint64 timestamp);
    event CertRevoked(address indexed operator, bytes32 indexed serialHash, uint64 timestamp);

    error ZeroAddress();
    error AlreadyOperator(address operator);
    error NotOperator(address account);
    error TreeSizeNotIncreasing(uint64 latest, uint64 given);
    error ZeroRoot();
    error AlreadyRevoked(address operator, bytes32 serialHash);

    mapping(address => Operator) private _operators;
    mapping(address => Anchor) private _latest;
    mapping(address => mapping(uint64 => bytes32)) private _roots;
    mapping(address => mapping(bytes32 => bool)) private _revoked;

    constructor() Ownable(msg.sender) {}

    modifier onlyOperator() {
        if (!_operators[msg.sender].active) revert NotOperator(msg.sender);
        _;
    }

    /// @notice Admit a CA operator. Reverts if it is already active.
    function registerOperator(address operator, bytes32 caCertHash, string calldata url) external onlyOwner {
        if (operator == address(0)) revert ZeroAddress();
        if (_operators[operator].active) revert AlreadyOperator(operator);
        _operators[operator] = Operator({active: true, caCertHash: caCertHash, url: url});
        emit OperatorRegistered(operator, caCertHash, url);
    }

    /// @notice Remove an active CA operator. Its anchored roots and revocations stay readable.
    function removeOperator(address operator) external onlyOwner {
        if (!_operators[operator].active) revert NotOperator(operator);
        delete _operators[operator];
        emit OperatorRemoved(operator);
    }

    function isOperator(address operator) external view returns (bool) {
        return _operators[operator].active;
    }

    /// @notice Hash of the operator's CA certificate; zero if not an active operator.
    function operatorCaCertHash(address operator) external view returns (bytes32) {
        return _operators[operator].caCertHash;
    }

    /// @notice URL where the operator serves its log; empty if not an active operator.
    function operatorUrl(address operator) external view returns (string memory) {
        return _operators[operator].url;
    }

    /// @notice Anchor a log root. treeSize must strictly exceed the caller's latest anchored size.
    function anchorRoot(uint64 treeSize, bytes32 root) external onlyOperator {
        if (root == bytes32(0)) revert ZeroRoot();
        uint64 latest = _latest[msg.sender].treeSize;
        if (treeSize <= latest) revert TreeSizeNotIncreasing(latest, treeSize);
        uint64 ts = uint64(block.timestamp);
        _latest[msg.sender] = Anchor({treeSize: treeSize, root: root, timestamp: ts});
        _roots[msg.sender][treeSize] = root;
        emit RootAnchored(msg.sender, treeSize, root, ts);
    }

    function latestRoot(address operator) external view returns (uint64 treeSize, bytes32 root, uint64 timestamp) {
        Anchor storage a = _latest[operator];
        return (a.treeSize, a.root, a.timestamp);
    }

    /// @notice Root anchored by `operator` at exactly `treeSize`; zero if never anchored.
    function rootAt(address operator, uint64 treeSize) external view returns (bytes32) {
        return _roots[operator][treeSize];
    }

    /// @notice Record the revocation of a certificate issued by the caller. Re-recording reverts.
    function recordRevocation(bytes32 serialHash) external onlyOperator {
        if (_revoked[msg.sender][serialHash]) revert AlreadyRevoked(msg.sender, serialHash);
        _revoked[msg.sender][serialHash] = true;
        emit CertRevoked(msg.sender, serialHash, uint64(block.timestamp));
    }

    function isRevoked(address operator, bytes32 serialHash) external view returns (bool) {
        return _revoked[operator][serialHash];
    }
}
