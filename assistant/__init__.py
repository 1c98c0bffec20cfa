"""The assistant: the one place where recognition, retrieval and the language model meet.

`birds identify`, `birds ask` and the web UI build an `AssistantConfig` from what the user said and call one
`Assistant` method; the assistant loads the detector, the classifier, the embedder and the language model the
first time they are needed and keeps them. Layers (docs/architecture.md): the CLI and the UI above it; the
library packages (recognition, knowledge, language_model, …) below it, none of which imports it.
"""

from birdsdao.assistant.core import Assistant, AssistantConfig, ModelChoice, Reply, Reporter

__all__ = ["Assistant", "AssistantConfig", "ModelChoice", "Reply", "Reporter"]
