"""The contract: the rules a recognizer must keep, the profiles that group them (generic
MMAction2, EPAM-Net), the hierarchy referee, and the guard's own errors.

Layer 0: imports nothing else of the guard, and no torch at module level (``--list``
and the front ends' first line read it before anything heavy is imported).
"""
