"""xsup package."""
