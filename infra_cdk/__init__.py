"""The LinkWithMentor CDK app: stacks and constructs built from the ``blueprint`` declaration."""
