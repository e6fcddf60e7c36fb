package scoring

// HasPathTable reports whether a tree ensemble's Explain uses the precomputed path table (else it
// walks the trees again).
func HasPathTable(e *Evaluator) bool { return e.trees.paths.off != nil }
