package controller

import "time"

// nowRFC3339 is the timestamp format of Kubernetes conditions. Condition
// times are informational; failover timing uses Config.Clock.
func nowRFC3339() string { return time.Now().UTC().Format(time.RFC3339) }
