package store

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"
)

// splitListener splits a plaintext listener between gRPC (connections
// that open with the HTTP/2 preface) and HTTP/1 (everything else), so the
// client port also answers /health and /metrics, as etcd's does.
type splitListener struct {
	net.Listener
	grpc, http *chanListener
}

func newSplitListener(l net.Listener) *splitListener {
	s := &splitListener{
		Listener: l,
		grpc:     newChanListener(l.Addr()),
		http:     newChanListener(l.Addr()),
	}
	go s.serve()
	return s
}

func (s *splitListener) serve() {
	defer s.grpc.close()
	defer s.http.close()
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		go s.route(c)
	}
}

func (s *splitListener) route(c net.Conn) {
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	head, err := br.Peek(3)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	pc := &peekedConn{Conn: c, r: br}
	if string(head) == "PRI" {
		s.grpc.deliver(pc)
	} else {
		s.http.deliver(pc)
	}
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener is a net.Listener fed by splitListener.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) close() { l.closed.Do(func() { close(l.done) }) }

func (l *chanListener) Close() error { l.close(); return nil }

func (l *chanListener) Addr() net.Addr { return l.addr }
