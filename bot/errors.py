"""The errors Votz raises on purpose.

    VotzError
    ├── ConfigError          a VOTZ_* setting is wrong
    ├── DefinitionError      a campaign or flow file is invalid (names file, field/step, problem)
    │   ├── CampaignError
    │   └── FlowError
    ├── TranslationError     a catalog is missing, not compiled, or lacks a message
    └── StoreError           the database refused something it should not have
        └── FrozenRulesError ballot rules changed after voting opened

Participants never see these: they get translated messages from the engine.
"""

from __future__ import annotations


class VotzError(Exception):
    """Base of every error Votz raises on purpose."""


class ConfigError(VotzError):
    """A VOTZ_* setting is missing or invalid."""


class DefinitionError(VotzError):
    """A definition file (campaign, flow) is invalid."""

    def __init__(self, file: str, where: str, problem: str) -> None:
        self.file, self.where, self.problem = file, where, problem
        super().__init__(f"{file}: {where}: {problem}")


class CampaignError(DefinitionError):
    """A campaign file is invalid."""


class FlowError(DefinitionError):
    """A flow file is invalid."""


class TranslationError(VotzError):
    """A catalog is missing, not compiled, or lacks a message."""


class StoreError(VotzError):
    """The database refused an operation."""


class FrozenRulesError(StoreError):
    """Ballot rules cannot change once voting has opened."""
