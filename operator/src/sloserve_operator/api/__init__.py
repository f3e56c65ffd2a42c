"""Versioned ``LLMService`` API models (the single source of the CRD)."""
