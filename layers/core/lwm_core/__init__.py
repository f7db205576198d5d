"""LinkWithMentor's shared core: the code every function imports from the shared layer."""
