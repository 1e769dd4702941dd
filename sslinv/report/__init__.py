"""`sslinv report`: result files -> tidy rows -> tables, correlations and figures."""
