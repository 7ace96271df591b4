// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IParams} from "./interfaces/IParams.sol";

/// A contract that reads the chain's parameters the way any contract would: through the
/// IParams interface at the module's address. Tests call the module through it.
contract ParamsUser {
    IParams public constant PARAMS = IParams(0x0000000000000000000000000000000000A1c001);

    event Observed(bytes32 indexed key, uint256 value);

    function epochLength() external view returns (uint256) {
        return PARAMS.epochLength();
    }

    function standardTier() external view returns (uint256 price, uint256 rpm, uint256 tokens) {
        return PARAMS.tier(2);
    }

    /// Reads `key` inside a transaction and records what it saw.
    function observe(bytes32 key) external returns (uint256 value) {
        value = PARAMS.get(key);
        emit Observed(key, value);
    }

    /// Tries to write a parameter; the module's revert reason bubbles up.
    function trySet(bytes32 key, uint256 value) external {
        PARAMS.set(key, value);
    }
}
