"""Pure DataFrame -> DataFrame functions, one module per subject."""
