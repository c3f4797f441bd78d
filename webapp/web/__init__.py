"""Pages, the JSON API and the real-time endpoints: the top layer, which composes the features'
services. Nothing in the features imports it, so the features stay free of import cycles."""
