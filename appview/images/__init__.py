"""The image service: avatars, banners and embed images resized and re-encoded from PDS blobs."""
