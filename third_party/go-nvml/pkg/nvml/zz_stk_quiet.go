// This file is not part of upstream go-nvml: it is the stk-go project's
// one change to its copy (see ../../README.stk.md).

package nvml

// nvml.h marks 29 NVML functions deprecated, and cgo's generated wrappers
// call every function the bindings cover, so gcc printed ~150 lines of
// warnings on the first build of any program using this package. cgo
// combines the #cgo flags of all the files of a package, so this one line
// quiets the whole package's C compilation.

// #cgo CFLAGS: -Wno-deprecated-declarations
import "C"
