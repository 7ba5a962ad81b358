package main

import (
	"flag"
	"strings"
)

// parseInterspersed parses args with fs like fs.Parse, but flags may come anywhere: before, between or after
// the positional arguments (`faultlab up FILE --cells legacy`). Everything after the first literal `--` is
// positional and kept verbatim (the `--` itself is dropped), so `faultlab exec HOST -- CMD -x` leaves -x to
// CMD. Afterwards fs.Args() holds the positional arguments in their order.
//
// A flag that is not a boolean takes the next argument as its value unless written --name=value, as with
// fs.Parse. Unknown flags, missing values and -h are reported by fs.Parse itself (same errors, same usage).
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case len(a) < 2 || a[0] != '-':
			pos = append(pos, a) // includes "-", the usual name of stdin
		default:
			flags = append(flags, a)
			if takesValue(fs, a) {
				if i+1 == len(args) {
					return fs.Parse(flags) // reports the missing value
				}
				i++
				flags = append(flags, args[i])
			}
		}
	}
	// The flag package stops at "--" and leaves what follows in fs.Args().
	return fs.Parse(append(append(flags, "--"), pos...))
}

// takesValue reports whether the flag argument a (-name or --name, without =value) is a defined flag that
// takes its value from the next argument. Unknown or malformed flags take none: fs.Parse rejects them.
func takesValue(fs *flag.FlagSet, a string) bool {
	name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	if name == "" || strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}
