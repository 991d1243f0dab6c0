"""The marketplace edge: KooGallery's signed order callbacks and identity syncs."""
