"""Face detection: CenterFace passes planned per picture and merged."""
