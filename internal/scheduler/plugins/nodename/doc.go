// Package nodename honours a pod's spec.nodeName when the pod still goes
// through the scheduler: only that node passes.
package nodename
