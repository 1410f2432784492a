"""The gRPC front door: conversion between the proto contract and the engine's packed records."""

from ._convert import (
    ConversionError,
    account_filter_from_proto,
    account_filter_to_proto,
    account_results_from_packed,
    accounts_from_packed,
    accounts_to_packed,
    transfer_results_from_packed,
    transfers_from_packed,
    transfers_to_packed,
)

__all__ = [
    "ConversionError",
    "account_filter_from_proto",
    "account_filter_to_proto",
    "account_results_from_packed",
    "accounts_from_packed",
    "accounts_to_packed",
    "transfer_results_from_packed",
    "transfers_from_packed",
    "transfers_to_packed",
]
