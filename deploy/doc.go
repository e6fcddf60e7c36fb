// Package deploy holds no code: its tests check the deployment kit beside it (kubernetes/,
// prometheus/, grafana/) against churnd itself. It is a module of its own so that the
// Kubernetes API types and the PromQL parser it decodes with stay out of churnd's dependencies.
package deploy
