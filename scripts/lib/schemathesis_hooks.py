"""schemathesis hooks for scripts/test: tus bodies are raw bytes under their own media type."""
import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
