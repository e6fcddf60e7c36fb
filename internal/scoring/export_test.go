package scoring

// HasPathTable reports whether a tree ensemble's Explain uses the precomputed path table (else it
// walks the trees again).
func HasPathTable(e *Evaluator) bool { return e.trees.paths.off != nil }

// PathSteps is the number of steps in a tree ensemble's path table.
func PathSteps(e *Evaluator) int { return len(e.trees.paths.steps) }
