"""Domain vocabulary: errors, enums and the public shapes every door serializes."""
