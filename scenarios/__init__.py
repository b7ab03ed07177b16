"""Scenario files for `cledecide rules test`, shipped with the package."""
