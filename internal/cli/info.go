package cli

import (
	"fmt"
	"io"

	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// PrintInfo prints a name-service answer the way the C examples do: one
// line per address, then the meta-data elements.
func PrintInfo(w io.Writer, info namesvc.Info) {
	fmt.Fprintf(w, "Received info on name %s", info.Name)
	if info.Group != "" {
		fmt.Fprintf(w, " (group %s)", info.Group)
	}
	if len(info.Addresses) == 0 {
		fmt.Fprintf(w, ", no address")
	}
	for i, e := range info.Addresses {
		sep := ", "
		if i > 0 {
			sep = "; "
		}
		fmt.Fprintf(w, "%sIP %s Port %d Protocol %s", sep, e.Addr.Addr(), e.Addr.Port(), e.Protocol)
	}
	fmt.Fprintf(w, ", FT State %v, linger %v\n", info.FT, info.Linger)
	if len(info.Meta) > 0 {
		fmt.Fprintf(w, "Name %s has %d meta data elements\n", info.Name, len(info.Meta))
	}
	for _, m := range info.Meta {
		switch m.UserType {
		case seq.UTMonitorTCP:
			fmt.Fprintf(w, "HTTP monitoring TCP Connection %s\n", m.CString())
		case seq.UTMonitorUDP:
			fmt.Fprintf(w, "HTTP monitoring UDP Connection %s\n", m.CString())
		case seq.UTMonitorMcast:
			fmt.Fprintf(w, "HTTP monitoring Multicast Connection %s\n", m.CString())
		default:
			fmt.Fprintf(w, "Meta data type %d sz %d %q\n", m.UserType, len(m.Data), m.CString())
		}
	}
}
