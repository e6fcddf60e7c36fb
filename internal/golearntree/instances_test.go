package golearntree

import "github.com/sjwhitworth/golearn/base"

// instances builds golearn instances of other rows, with the same attributes, for golearn's own
// predictions, which the tests hold the exported trees against.
func (bn *binned) instances(X []float64, n, d int) (*base.DenseInstances, error) {
	var inst *base.DenseInstances
	err := guard("building instances", func() error {
		inst = base.NewDenseInstances()
		specs := make([]base.AttributeSpec, d)
		for j := range d {
			specs[j] = inst.AddAttribute(bn.attrs[j])
		}
		cspec := inst.AddAttribute(bn.class)
		if err := inst.AddClassAttribute(bn.class); err != nil {
			return err
		}
		return bn.fill(inst, specs, cspec, X, n, d, nil)
	})
	return inst, err
}
