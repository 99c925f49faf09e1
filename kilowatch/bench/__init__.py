"""`kilowatch bench`: the numbers of SPEC §8, measured side by side in one run."""
