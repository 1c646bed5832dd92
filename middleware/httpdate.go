// HTTP-date parsing (RFC 9110 §5.6.7) for the fields whose invalid values
// have a meaning of their own, such as Expires (RFC 9111 §5.3).

package middleware

import "time"

// parseHTTPDate parses an RFC 9110 §5.6.7 HTTP-date in any of its three
// formats: the IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and the two
// obsolete ones a recipient must accept, the RFC 850 date ("Sunday,
// 06-Nov-94 08:49:37 GMT") and the asctime date ("Sun Nov  6 08:49:37 1994").
// now places an RFC 850 two-digit year: the year in now's century, or the
// century before when that would be more than 50 years after now (RFC 9110
// §5.6.7).
//
// The grammar is followed exactly: single spaces where it has SP, the
// separators it names, two-digit days (in asctime a space then one digit,
// or two digits), hours, minutes and seconds, four-digit years, "GMT",
// nothing before or after (callers trim optional whitespace). The date must
// exist (no 31 Apr) and its day-name must be its weekday. Second 60 (a leap
// second, which the grammar allows) is read as the next minute's start.
// Anything else is not an HTTP-date: "2:01:18" (a one-digit hour), double
// spaces, "18-Aug-2050" in an IMF-fixdate, "UTC", a trailing comment.
//
// One leniency: day and month names and "GMT" match in any ASCII case.
// RFC 9110 calls HTTP-date case-sensitive, which makes "THU, 18 AUG 2050
// 02:01:18 gmt" invalid, but the case of a name cannot change the instant it
// denotes, and the RFC asks recipients to be robust in parsing timestamps;
// rejecting it would only turn a clear date into "already expired".
func parseHTTPDate(s string, now time.Time) (time.Time, bool) {
	switch {
	case len(s) == len("Sun, 06 Nov 1994 08:49:37 GMT") && s[3] == ',':
		return parseIMFFixdate(s)
	case len(s) == len("Sun Nov  6 08:49:37 1994") && s[3] == ' ':
		return parseAsctime(s)
	}
	return parseRFC850(s, now)
}

// parseIMFFixdate parses "Sun, 06 Nov 1994 08:49:37 GMT".
func parseIMFFixdate(s string) (time.Time, bool) {
	wd, ok1 := shortDay(s[0:3])
	ok := ok1 && s[3:5] == ", " && s[7] == ' ' && s[11] == ' ' && s[16] == ' ' && s[25] == ' '
	day, ok2 := digits(s[5:7])
	month, ok3 := shortMonth(s[8:11])
	year, ok4 := digits(s[12:16])
	if !(ok && ok2 && ok3 && ok4 && equalFoldASCII(s[26:], "GMT")) {
		return time.Time{}, false
	}
	return makeDate(year, month, day, s[17:25], wd)
}

// parseAsctime parses "Sun Nov  6 08:49:37 1994" (or "Sun Nov 06 ...").
func parseAsctime(s string) (time.Time, bool) {
	wd, ok1 := shortDay(s[0:3])
	month, ok2 := shortMonth(s[4:7])
	ok := ok1 && ok2 && s[3] == ' ' && s[7] == ' ' && s[10] == ' ' && s[19] == ' '
	dayField := s[8:10]
	if dayField[0] == ' ' {
		dayField = dayField[1:] // SP DIGIT
	}
	day, ok3 := digits(dayField)
	year, ok4 := digits(s[20:24])
	if !(ok && ok3 && ok4) {
		return time.Time{}, false
	}
	return makeDate(year, month, day, s[11:19], wd)
}

// parseRFC850 parses "Sunday, 06-Nov-94 08:49:37 GMT".
func parseRFC850(s string, now time.Time) (time.Time, bool) {
	comma := -1
	for i := 0; i < len(s) && i <= len("Wednesday"); i++ {
		if s[i] == ',' {
			comma = i
			break
		}
	}
	if comma < 0 {
		return time.Time{}, false
	}
	wd, ok := longDay(s[:comma])
	rest := s[comma:]
	if !ok || len(rest) != len(", 06-Nov-94 08:49:37 GMT") || rest[:2] != ", " ||
		rest[4] != '-' || rest[8] != '-' || rest[11] != ' ' || rest[20] != ' ' || !equalFoldASCII(rest[21:], "GMT") {
		return time.Time{}, false
	}
	day, ok1 := digits(rest[2:4])
	month, ok2 := shortMonth(rest[5:8])
	yy, ok3 := digits(rest[9:11])
	if !(ok1 && ok2 && ok3) {
		return time.Time{}, false
	}
	year := now.UTC().Year()/100*100 + yy
	if t, ok := makeDate(year, month, day, rest[12:20], -1); ok && t.After(now.AddDate(50, 0, 0)) {
		year -= 100
	}
	return makeDate(year, month, day, rest[12:20], wd)
}

// makeDate checks and builds the instant of a parsed date at the time of
// day clock ("08:49:37"). wd is the weekday the date named, or -1 not to
// check it.
func makeDate(year int, month time.Month, day int, clock string, wd time.Weekday) (time.Time, bool) {
	hour, ok1 := digits(clock[0:2])
	minute, ok2 := digits(clock[3:5])
	sec, ok3 := digits(clock[6:8])
	if !(ok1 && ok2 && ok3) || clock[2] != ':' || clock[5] != ':' ||
		hour > 23 || minute > 59 || sec > 60 || day < 1 || day > daysIn(year, month) {
		return time.Time{}, false
	}
	t := time.Date(year, month, day, hour, minute, sec, 0, time.UTC)
	if wd >= 0 && time.Date(year, month, day, 0, 0, 0, 0, time.UTC).Weekday() != wd {
		return time.Time{}, false
	}
	return t, true
}

// daysIn is the number of days of month in year (proleptic Gregorian).
func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// digits parses s, one to four ASCII digits, as a decimal number.
func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

var (
	shortDays   = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	longDays    = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	shortMonths = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

func shortDay(s string) (time.Weekday, bool) {
	for i, d := range shortDays {
		if equalFoldASCII(s, d) {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

func longDay(s string) (time.Weekday, bool) {
	for i, d := range longDays {
		if equalFoldASCII(s, d) {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

func shortMonth(s string) (time.Month, bool) {
	for i, m := range shortMonths {
		if equalFoldASCII(s, m) {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

// equalFoldASCII reports whether a and b are equal ignoring ASCII case
// (strings.EqualFold also folds non-ASCII letters, such as the Kelvin sign
// to "k").
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if asciiLowerByte(a[i]) != asciiLowerByte(b[i]) {
			return false
		}
	}
	return true
}
