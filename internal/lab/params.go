package lab

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Kind is a parameter's type.
type Kind string

// Parameter kinds.
const (
	Int    Kind = "int"
	Float  Kind = "float"
	Bool   Kind = "bool"
	Choice Kind = "choice" // one of Choices
	Text   Kind = "text"   // at most MaxLen bytes, checked by Check
)

// Param describes one typed parameter with its default and hard bounds.
// Bounds are inclusive and cannot be overridden by a caller: they are what
// keeps a click from exhausting the machine.
type Param struct {
	Name    string   `json:"name"`
	Label   string   `json:"label"`
	Help    string   `json:"help,omitempty"`
	Unit    string   `json:"unit,omitempty"`
	Kind    Kind     `json:"kind"`
	Default any      `json:"default"`
	Min     float64  `json:"min"`
	Max     float64  `json:"max"`
	Choices []string `json:"choices,omitempty"`
	MaxLen  int      `json:"maxLen,omitempty"`
	// Check validates a Text value beyond its length.
	Check func(string) error `json:"-"`
}

// Values holds checked parameter values: int, float64, bool or string,
// by the parameter's Kind. Every parameter of the experiment is present.
type Values map[string]any

// Int returns an Int parameter.
func (v Values) Int(name string) int { return v[name].(int) }

// Float returns a Float parameter.
func (v Values) Float(name string) float64 { return v[name].(float64) }

// Bool returns a Bool parameter.
func (v Values) Bool(name string) bool { return v[name].(bool) }

// String returns a Choice or Text parameter.
func (v Values) String(name string) string { return v[name].(string) }

// Parameter error codes, as the API reports them.
const (
	CodeUnknownParam = "unknown_param"
	CodeBadParam     = "bad_param"
	CodeOutOfRange   = "param_out_of_range"
)

// ParamError says which parameter was refused and what is allowed. The
// HTTP API answers it with 422.
type ParamError struct {
	Code    string   `json:"code"`
	Param   string   `json:"param"`
	Message string   `json:"message"`
	Min     *float64 `json:"min,omitempty"`
	Max     *float64 `json:"max,omitempty"`
	Choices []string `json:"choices,omitempty"`
}

func (e *ParamError) Error() string { return e.Message }

// Resolve checks raw values against params and fills in defaults. A raw
// value may be the JSON form (float64, bool, string) or a string as typed
// on a command line. The first problem found, in parameter order, is
// returned as a *ParamError.
func Resolve(params []Param, raw map[string]any) (Values, error) {
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !slices.ContainsFunc(params, func(p Param) bool { return p.Name == name }) {
			known := make([]string, len(params))
			for i, p := range params {
				known[i] = p.Name
			}
			return nil, &ParamError{Code: CodeUnknownParam, Param: name,
				Message: fmt.Sprintf("unknown parameter %q (known: %s)", name, strings.Join(known, ", "))}
		}
	}
	out := make(Values, len(params))
	for _, p := range params {
		r, ok := raw[p.Name]
		if !ok || r == nil {
			out[p.Name] = p.Default
			continue
		}
		v, err := p.convert(r)
		if err != nil {
			return nil, err
		}
		out[p.Name] = v
	}
	return out, nil
}

func (p Param) convert(r any) (any, error) {
	bad := func(format string, args ...any) error {
		return &ParamError{Code: CodeBadParam, Param: p.Name, Message: p.Name + ": " + fmt.Sprintf(format, args...)}
	}
	switch p.Kind {
	case Int, Float:
		var f float64
		switch x := r.(type) {
		case float64:
			f = x
		case int:
			f = float64(x)
		case string:
			var err error
			if f, err = strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(x), "_", ""), 64); err != nil {
				return nil, bad("%q is not a number", x)
			}
		default:
			return nil, bad("want a number, got %T", r)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, bad("want a finite number")
		}
		if p.Kind == Int && f != math.Trunc(f) {
			return nil, bad("%s is not a whole number", num(f))
		}
		if f < p.Min || f > p.Max {
			lo, hi := p.Min, p.Max
			return nil, &ParamError{Code: CodeOutOfRange, Param: p.Name, Min: &lo, Max: &hi,
				Message: fmt.Sprintf("%s: %s is out of range: allowed %s to %s", p.Name, num(f), num(lo), num(hi))}
		}
		if p.Kind == Int {
			return int(f), nil
		}
		return f, nil
	case Bool:
		switch x := r.(type) {
		case bool:
			return x, nil
		case string:
			b, err := strconv.ParseBool(x)
			if err != nil {
				return nil, bad("%q is not true or false", x)
			}
			return b, nil
		}
		return nil, bad("want true or false, got %T", r)
	case Choice:
		s, ok := r.(string)
		if !ok {
			return nil, bad("want one of %s", strings.Join(p.Choices, ", "))
		}
		if !slices.Contains(p.Choices, s) {
			return nil, &ParamError{Code: CodeOutOfRange, Param: p.Name, Choices: p.Choices,
				Message: fmt.Sprintf("%s: %q is not allowed: one of %s", p.Name, s, strings.Join(p.Choices, ", "))}
		}
		return s, nil
	case Text:
		s, ok := r.(string)
		if !ok {
			return nil, bad("want text, got %T", r)
		}
		if len(s) > p.MaxLen {
			hi := float64(p.MaxLen)
			return nil, &ParamError{Code: CodeOutOfRange, Param: p.Name, Max: &hi,
				Message: fmt.Sprintf("%s: %d bytes is too long: at most %d", p.Name, len(s), p.MaxLen)}
		}
		if p.Check != nil {
			if err := p.Check(s); err != nil {
				return nil, bad("%v", err)
			}
		}
		return s, nil
	}
	return nil, bad("parameter kind %q is unknown", p.Kind)
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
