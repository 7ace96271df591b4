// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Exercises what a chain must get right for dApps: storage, events, reverts with reasons and
/// custom errors, CREATE2, value transfers and block context.
contract Probe {
    uint256 public value;
    address public owner;

    event ValueSet(address indexed by, uint256 indexed previous, uint256 value);
    event Deployed(address child, bytes32 salt);

    error Unauthorized(address caller);

    constructor() payable {
        owner = msg.sender;
    }

    function set(uint256 v) external {
        emit ValueSet(msg.sender, value, v);
        value = v;
    }

    function fail(string calldata reason) external pure {
        revert(reason);
    }

    function onlyOwner() external view {
        if (msg.sender != owner) revert Unauthorized(msg.sender);
    }

    function deploy(bytes32 salt) external returns (address child) {
        child = address(new Child{salt: salt}(value));
        emit Deployed(child, salt);
    }

    function predict(bytes32 salt) external view returns (address) {
        bytes memory init = abi.encodePacked(type(Child).creationCode, abi.encode(value));
        bytes32 hash = keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, keccak256(init)));
        return address(uint160(uint256(hash)));
    }

    function pay(address payable to) external payable {
        to.transfer(msg.value);
    }

    function context() external view returns (uint256 number, uint256 timestamp, uint256 chainId, uint256 basefee, address coinbase) {
        return (block.number, block.timestamp, block.chainid, block.basefee, block.coinbase);
    }

    function burn(uint256 rounds) external {
        for (uint256 i = 0; i < rounds; i++) {
            value = uint256(keccak256(abi.encode(value, i)));
        }
    }
}

contract Child {
    uint256 public immutable seed;

    constructor(uint256 seed_) {
        seed = seed_;
    }
}
