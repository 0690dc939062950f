// Package tainttoleration filters out nodes with NoSchedule or NoExecute
// taints the pod does not tolerate, and scores nodes by how few
// PreferNoSchedule taints the pod leaves untolerated.
package tainttoleration
