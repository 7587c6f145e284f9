"""Numerai Classic: Numerai's own obfuscated features per stock and era, ``id,prediction`` submissions."""
