package sqlcommon

import (
	"net/url"
	"strings"
)

// RedactURL returns u with any password (in the userinfo or in a
// password= parameter) replaced by "xxxxx", for logs and errors. It errs
// on the side of hiding: everything before the last '@' except a plain
// user name is hidden.
func RedactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return "xxxxx"
	}
	out := scheme + "://"
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, _, hasPW := strings.Cut(rest[:at], ":")
		if !plainName(user) {
			user = "xxxxx"
		}
		if hasPW {
			user += ":xxxxx"
		}
		out += user + "@"
		rest = rest[at+1:]
	}
	base, query, hasQuery := strings.Cut(rest, "?")
	out += base
	if hasQuery {
		parts := strings.Split(query, "&")
		for i, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			if secretParam(k) {
				parts[i] = k + "=xxxxx"
			}
		}
		out += "?" + strings.Join(parts, "&")
	}
	return out
}

// plainName reports a user name safe to show.
func plainName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-%", r)) {
			return false
		}
	}
	return true
}

func secretParam(k string) bool {
	lk := strings.ToLower(k)
	return strings.Contains(lk, "password") || lk == "passwd" || lk == "pwd"
}

// Secrets returns the strings of u that may be a password (raw and
// decoded), so that errors from drivers can be scrubbed of them. Callers
// add the password their parser found.
func Secrets(u string) []string {
	var out []string
	add := func(s string, unescape func(string) (string, error)) {
		if s == "" {
			return
		}
		out = append(out, s)
		if d, err := unescape(s); err == nil && d != s && d != "" {
			out = append(out, d)
		}
	}
	_, rest, _ := strings.Cut(u, "://")
	base, _, _ := strings.Cut(rest, "?")
	for _, at := range []int{strings.LastIndex(base, "@"), strings.LastIndex(rest, "@")} {
		if at < 0 {
			continue
		}
		if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
			add(pw, url.PathUnescape)
		}
	}
	if _, q, ok := strings.Cut(rest, "?"); ok {
		for _, p := range strings.Split(q, "&") {
			if k, v, _ := strings.Cut(p, "="); secretParam(k) {
				add(v, url.QueryUnescape)
			}
		}
	}
	return out
}

// Scrub returns err with every secret replaced by "xxxxx" in its message;
// errors.Is and errors.As still see the original.
func Scrub(err error, secrets []string) error {
	if err == nil || len(secrets) == 0 {
		return err
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if s != "" {
			clean = strings.ReplaceAll(clean, s, "xxxxx")
		}
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }
