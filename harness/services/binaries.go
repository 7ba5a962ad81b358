package services

import "fmt"

// binary is a program a driver runs from the lab's own filesystem (the netns backend; on the docker
// backend the image brings it).
type binary struct {
	name   string // looked up in PATH and the sbin dirs
	option bool   // services[].options.binary names it instead
	get    string // how to get it
}

// binaries lists, by service kind, the programs each driver's New looks for, with the same names and
// messages, so a scenario's binaries can be checked before the first cell (FindBinaries).
var binaries = map[string][]binary{
	"haproxy": {{name: "haproxy", option: true, get: haproxyGet}},
	"nginx":   {{name: "nginx", option: true, get: nginxGet}},
	"mariadb": {{name: "mariadbd", option: true, get: mariadbGet}, {name: "mariadb-install-db", get: mariadbGet}},
	"tengine": {{name: "tengine", option: true, get: tengineGet}},
}

// Binary is one program a service runs on the netns backend, as FindBinaries found it.
type Binary struct {
	Name string // e.g. mariadbd
	// Option says whether services[].options.binary names this program (otherwise it comes from PATH).
	Option bool
	Path   string // where it is; "" when Err is set
	// Err says why it cannot be used and how to get one; it matches harness.ErrUnsupported when the
	// program is simply absent.
	Err error
}

// FindBinaries finds the programs a service of kind runs on the netns backend, as its driver will (the
// "binary" option as given, else PATH and the sbin dirs), with the driver's own messages. The error is for
// a kind the lab does not know; a missing program is in its Binary's Err.
func FindBinaries(kind string, options map[string]string) ([]Binary, error) {
	if _, err := Lookup(kind); err != nil {
		return nil, err
	}
	var out []Binary
	for _, b := range binaries[kind] {
		p, err := b.find(options)
		out = append(out, Binary{Name: b.name, Option: b.option, Path: p, Err: err})
	}
	return out, nil
}

func (b binary) find(options map[string]string) (string, error) {
	if b.option {
		return findBinary(nil, b.name, options["binary"], b.get)
	}
	if p, ok := lookBinary(b.name); ok {
		return p, nil
	}
	return "", &binaryError{unsupported: true, msg: fmt.Sprintf("%s not found in PATH: %s", b.name, b.get)}
}
