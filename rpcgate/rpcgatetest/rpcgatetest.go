// Package rpcgatetest speaks llama.cpp's RPC protocol as a hostile member
// would: the messages no inference sends, which the gate must refuse, for
// the tests of the gate, of a node, and of the namespace lab.
package rpcgatetest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/potluck-gpu/potluck/rpcgate"
)

// Frame is one message of the protocol: its command, its size and p.
func Frame(cmd byte, p []byte) []byte {
	b := make([]byte, 9, 9+len(p))
	b[0] = cmd
	binary.LittleEndian.PutUint64(b[1:], uint64(len(p)))
	return append(b, p...)
}

// Tensor builds a struct rpc_tensor in no buffer.
func Tensor(id uint64, typ, op uint32, ne [4]uint32, src ...uint64) []byte {
	b := make([]byte, 296)
	binary.LittleEndian.PutUint64(b[0:], id)
	binary.LittleEndian.PutUint32(b[8:], typ)
	for i, n := range ne {
		binary.LittleEndian.PutUint32(b[20+4*i:], n)
		binary.LittleEndian.PutUint32(b[36+4*i:], 4*n) // strides; the gate checks no stride in no buffer
	}
	binary.LittleEndian.PutUint32(b[52:], op)
	for i, s := range src {
		binary.LittleEndian.PutUint64(b[124+8*i:], s)
	}
	return b
}

// Graph builds a GRAPH_COMPUTE of one node and its tensors, in the layout
// of protocol major.
func Graph(major byte, node uint64, tensors ...[]byte) []byte {
	p := make([]byte, 0, 20+8+296*len(tensors))
	p = binary.LittleEndian.AppendUint32(p, 0) // device
	if major >= 8 {
		p = binary.LittleEndian.AppendUint64(p, 42) // uid
	}
	p = binary.LittleEndian.AppendUint32(p, 1)    // nodes
	p = binary.LittleEndian.AppendUint64(p, node) // the node
	p = binary.LittleEndian.AppendUint32(p, uint32(len(tensors)))
	for _, t := range tensors {
		p = append(p, t...)
	}
	return p
}

// Hello sends HELLO on c, with capabilities the gate must hide, and reads
// the worker's answer: its protocol's major version.
func Hello(c net.Conn, within time.Duration) (byte, error) {
	caps := make([]byte, 24)
	for i := range caps {
		caps[i] = 0xAA // the gate sends these as zeros
	}
	if _, err := c.Write(Frame(14, caps)); err != nil {
		return 0, err
	}
	ans := make([]byte, 36)
	c.SetReadDeadline(time.Now().Add(within))
	defer c.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(c, ans); err != nil {
		return 0, fmt.Errorf("HELLO: %w", err)
	}
	if ans[8] != 7 && ans[8] != 8 {
		return 0, fmt.Errorf("the worker speaks RPC %d", ans[8])
	}
	for _, b := range ans[12:] {
		if b != 0 {
			return 0, fmt.Errorf("the worker's capabilities reached the head: %x", ans[12:])
		}
	}
	return ans[8], nil
}

// An Attack is one message no inference sends, and the reason the gate
// gives for refusing it.
type Attack struct {
	Name, Reason string
	Frame        func(major byte) []byte
}

// Attacks are the messages a hostile member sends after HELLO: a graph
// with a custom operation whose function pointer it chose, GET_ROWS with
// mismatched shapes, a 1 TB buffer, a command a head never sends, a second
// HELLO, and a graph node of id 0.
func Attacks() []Attack {
	custom := Tensor(1, 0, 95, [4]uint32{4, 1, 1, 1})
	binary.LittleEndian.PutUint64(custom[56:], 0x4141414141414141) // the function pointer
	a := Tensor(2, 0, 0, [4]uint32{8, 16, 1, 1})
	ids := Tensor(3, 26, 0, [4]uint32{4, 5, 1, 1}) // ne1 5 where a's ne2 is 1
	rows := Tensor(4, 0, 40, [4]uint32{8, 4, 5, 1}, 2, 3)
	alloc := make([]byte, 12)
	binary.LittleEndian.PutUint64(alloc[4:], 1<<40)
	return []Attack{
		{"a custom operation with a chosen function pointer", rpcgate.ReasonCustomOp, func(v byte) []byte { return Frame(10, Graph(v, 1, custom)) }},
		{"GET_ROWS with mismatched shapes", rpcgate.ReasonShape, func(v byte) []byte { return Frame(10, Graph(v, 4, a, ids, rows)) }},
		{"a 1 TB buffer", rpcgate.ReasonAlloc, func(byte) []byte { return Frame(0, alloc) }},
		{"COMM_INIT, which a head never sends", rpcgate.ReasonCommand, func(byte) []byte { return Frame(20, make([]byte, 80)) }},
		{"a second HELLO", rpcgate.ReasonFraming, func(byte) []byte { return Frame(14, make([]byte, 24)) }},
		{"a graph with a node of id 0", rpcgate.ReasonGraph, func(v byte) []byte { return Frame(10, Graph(v, 0, a)) }},
	}
}

// Closed says whether the gate closed c after an attack: a read ends at
// once rather than waiting for an answer.
func Closed(c net.Conn, within time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(within))
	_, err := c.Read(make([]byte, 1))
	if err == nil {
		return false
	}
	ne, ok := err.(net.Error)
	return !ok || !ne.Timeout()
}
