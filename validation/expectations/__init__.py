"""Setlist's custom Great Expectations 1.x expectations.

Importing this package registers the expectations and their metric providers with GE (GE registers
classes when they are defined). ``validation.gx`` imports it before any suite is built or loaded.
"""

from validation.expectations.drift import ExpectColumnDistributionDriftToBeLessThan
from validation.expectations.types import (
    ExpectColumnListElementsToBeBetween,
    ExpectColumnLogicalTypeToBe,
    ExpectFeatureColumnsToExcludeIdentifiers,
    is_identifier,
)

__all__ = [
    "ExpectColumnDistributionDriftToBeLessThan",
    "ExpectColumnListElementsToBeBetween",
    "ExpectColumnLogicalTypeToBe",
    "ExpectFeatureColumnsToExcludeIdentifiers",
    "is_identifier",
]
