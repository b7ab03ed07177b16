"""The default CLE rule set, shipped inside the package as YAML data files."""
