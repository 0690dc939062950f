package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the optional shared value tier: values evicted from memory are
// written to Redis under prefix + mod revision + key (an immutable
// version, so several store instances can share it), and values missing
// from memory are looked up there before the engine is asked. Every value
// read back is checked against the length and hash the cache recorded
// from the change feed, so a stale or foreign entry is never served.
type Redis struct {
	c      *redis.Client
	prefix string
	ttl    time.Duration
	log    *slog.Logger

	mu     sync.RWMutex // guards closing puts
	closed bool
	puts   chan redisPut
	wg     sync.WaitGroup
}

type redisPut struct {
	key   string
	value []byte
}

// Redis tuning.
const (
	// DefaultRedisTTL is how long a value stays in Redis (?ttl= in the URL).
	DefaultRedisTTL = time.Hour
	redisQueue      = 4096 // evicted values waiting to be written; more are dropped
	redisBatch      = 256  // values per pipelined write
)

// RedactRedisURL returns u without its password, for logs and errors.
func RedactRedisURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "redis://(unparsable url)"
	}
	p.RawQuery = ""
	return p.Redacted()
}

// OpenRedis connects to redis://[user:password@]host:port/db. The URL may
// carry prefix= (the key prefix; default defaultPrefix) and ttl= (a Go
// duration; default DefaultRedisTTL); other query parameters are go-redis
// options. It pings the server and fails if it does not answer. Errors
// and logs never contain the password.
func OpenRedis(ctx context.Context, rawURL, defaultPrefix string, log *slog.Logger) (*Redis, error) {
	if log == nil {
		log = slog.Default()
	}
	red := RedactRedisURL(rawURL)
	p, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: not a url", red)
	}
	q := p.Query()
	prefix, ttl := defaultPrefix, DefaultRedisTTL
	if v := q.Get("prefix"); v != "" {
		prefix = v
	}
	if v := q.Get("ttl"); v != "" {
		if ttl, err = time.ParseDuration(v); err != nil || ttl <= 0 {
			return nil, fmt.Errorf("redis url %s: bad ttl %q", red, v)
		}
	}
	q.Del("prefix")
	q.Del("ttl")
	p.RawQuery = q.Encode()
	opts, err := redis.ParseURL(p.String())
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %s", red, scrubPassword(err.Error(), p))
	}
	c := redis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connecting to redis %s: %s", red, scrubPassword(err.Error(), p))
	}
	r := &Redis{c: c, prefix: prefix, ttl: ttl, log: log.With("component", "store-cache-redis"), puts: make(chan redisPut, redisQueue)}
	r.wg.Add(1)
	go r.writer()
	return r, nil
}

func scrubPassword(msg string, u *url.URL) string {
	if pw, ok := u.User.Password(); ok && pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return msg
}

func (r *Redis) key(key []byte, mod int64) string {
	var b strings.Builder
	b.Grow(len(r.prefix) + 21 + len(key))
	b.WriteString(r.prefix)
	b.WriteString(strconv.FormatInt(mod, 10))
	b.WriteByte(':')
	b.Write(key)
	return b.String()
}

// put queues a value for writing; it never blocks (a full queue drops it).
func (r *Redis) put(key []byte, mod int64, value []byte) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return
	}
	select {
	case r.puts <- redisPut{key: r.key(key, mod), value: value}:
	default:
	}
}

func (r *Redis) writer() {
	defer r.wg.Done()
	batch := make([]redisPut, 0, redisBatch)
	for p := range r.puts {
		batch = append(batch[:0], p)
	fill:
		for len(batch) < redisBatch {
			select {
			case p, ok := <-r.puts:
				if !ok {
					break fill
				}
				batch = append(batch, p)
			default:
				break fill
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pipe := r.c.Pipeline()
		for _, p := range batch {
			pipe.Set(ctx, p.key, p.value, r.ttl)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			r.log.Debug("writing evicted values to redis failed", "values", len(batch), "err", err)
		}
		cancel()
	}
}

// get looks needs up; it returns the values found (nil where missing or
// not matching the recorded length and hash).
func (r *Redis) get(ctx context.Context, needs []need) ([][]byte, error) {
	keys := make([]string, len(needs))
	for i, n := range needs {
		keys[i] = r.key(n.key, n.mod)
	}
	vals, err := r.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("reading values from redis: %w", err)
	}
	out := make([][]byte, len(needs))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok || len(s) != needs[i].vlen {
			continue
		}
		b := []byte(s)
		if hashValue(b) == needs[i].vhash {
			out[i] = b
		}
	}
	return out, nil
}

// Close flushes queued writes and disconnects.
func (r *Redis) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.puts)
	r.mu.Unlock()
	r.wg.Wait()
	if err := r.c.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("closing redis: %w", err)
	}
	return nil
}
