"""Test helpers other apps may reuse: a local Cloud Natural Language fake and its pytest fixtures."""
