"""The base every layer stands on: the one exception type (errors), checks at the boundary (validate),
atomic and locked writes (storage), and the environment variables (settings). Imports nothing else of swiftlab."""
