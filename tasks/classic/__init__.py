"""Numerai Classic: Numerai's own obfuscated features, the same chain as Signals."""
