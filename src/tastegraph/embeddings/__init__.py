"""Offline item embeddings: tower features, the fusion model, the batch job, the store."""
