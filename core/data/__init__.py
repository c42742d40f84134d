"""Data: the ICT-FaceKit loader, the synthetic head corpus and training samples."""
