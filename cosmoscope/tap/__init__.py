"""A read-only IVOA TAP service (ObsCore) and Simple Cone Search over the catalog."""
