"""A corpus of bad inputs run through the real `hpo` command: one clear line, never a change."""
