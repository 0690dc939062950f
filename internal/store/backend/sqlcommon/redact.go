package sqlcommon

import (
	"net/url"
	"strings"
)

// RedactURL returns u with any password (in the userinfo or in a
// password= parameter) replaced by "xxxxx", for logs and errors.
func RedactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return "xxxxx"
	}
	out := scheme + "://"
	if at := strings.LastIndex(beforeQuery(rest), "@"); at >= 0 {
		user := rest[:at]
		if name, _, hasPW := strings.Cut(user, ":"); hasPW {
			user = name + ":xxxxx"
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
			if lk := strings.ToLower(k); strings.Contains(lk, "password") || lk == "passwd" || lk == "pwd" {
				parts[i] = k + "=xxxxx"
			}
		}
		out += "?" + strings.Join(parts, "&")
	}
	return out
}

func beforeQuery(s string) string {
	b, _, _ := strings.Cut(s, "?")
	return b
}

// Secrets returns the password strings found in u (raw and decoded), so
// that errors from drivers can be scrubbed of them.
func Secrets(u string) []string {
	var out []string
	_, rest, _ := strings.Cut(u, "://")
	if at := strings.LastIndex(beforeQuery(rest), "@"); at >= 0 {
		if _, pw, ok := strings.Cut(rest[:at], ":"); ok && pw != "" {
			out = append(out, pw)
			if d, err := url.PathUnescape(pw); err == nil && d != pw {
				out = append(out, d)
			}
		}
	}
	if _, q, ok := strings.Cut(rest, "?"); ok {
		for _, p := range strings.Split(q, "&") {
			k, v, _ := strings.Cut(p, "=")
			if lk := strings.ToLower(k); (strings.Contains(lk, "password") || lk == "passwd" || lk == "pwd") && v != "" {
				out = append(out, v)
				if d, err := url.QueryUnescape(v); err == nil && d != v {
					out = append(out, d)
				}
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
