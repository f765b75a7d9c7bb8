"""Allen objects: the project cache, the session, and the AllenSDK cache layout."""
