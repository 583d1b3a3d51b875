"""The embedding-native shopping assistant: a language model that reads item embeddings."""
