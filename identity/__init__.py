"""identity: the KooGallery joint-operation identity service for an ISV."""
